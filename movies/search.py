"""Title search as people type it: an in-process index of every title, typo-tolerant through rapidfuzz.

Each process keeps one `TitleIndex` (tokens -> movies, plus each movie's year, genres and popularity as
arrays). A search reads the one-row `CatalogueVersion` and rebuilds the index when another process (or
this one) changed movies; popularity is re-read every POPULARITY_SECONDS. Matching is on folded words
(case, accents, punctuation; leading articles optional), in any order; the last word may be a prefix
(as-you-type), and a word of four letters or more may be one edit away (two from seven letters) from
a title's word. A four-digit year in the query favours movies of that year without being required.

Results are ordered by: fewer typos, every year in the query met, how the title matches (the whole
title, the title's start, anywhere), then popularity."""

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Max
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from movies.models import MIN_TAG_STRENGTH, CatalogueVersion, Movie, MovieTag
from movies.titles import (
    SAME_WORD,
    announces_number,
    initialisms,
    is_article,
    number_of,
    numbers_as_digits,
    split_title,
    words,
)

MAX_QUERY_WORDS = 8
MAX_RANKED = 3000  # candidates whose title structure is examined; the rest by the cheap keys only
POPULARITY_SECONDS = 60.0
MIN_YEAR, MAX_YEAR = 1870, 2100


@dataclass
class TitleIndex:
    token: str  # the CatalogueVersion token it was built from
    ids: np.ndarray  # (num_movies,) Movie.id, ascending
    years: np.ndarray  # (num_movies,) 0 where unknown
    cores: list[list[tuple[str, ...]]]  # the main and each alternative title's words, articles left out
    names: list[tuple[str, ...]]  # the main title's words, all of them: what a series is named by
    vocabulary: list[str]  # sorted distinct words (main, alternative titles, joined forms)
    postings: list[np.ndarray]  # per vocabulary word: movie positions
    by_length: dict[int, list[int]]  # word length -> vocabulary positions of title words (not aliases), for typos
    genres: dict[str, np.ndarray]  # genre name -> movie positions
    tag_vocabulary: list[str] = field(default_factory=list)  # sorted distinct words of tags
    tag_postings: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (positions, strengths)
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    num_ratings: np.ndarray = field(default_factory=lambda: np.zeros(0))  # how well known: who rated it
    rated_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    title_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rank by display title
    stats_read_at: float = 0.0

    @property
    def num_movies(self) -> int:
        return len(self.ids)


def alternative_titles(display_title: str) -> tuple[str, list[str]]:
    """(the main title, the titles in parentheses that are not years: a.k.a. and original-language ones)."""
    head, groups = split_title(display_title)
    others = [g for g in groups if not g[:4].isdigit()]
    return head, [g[len("a.k.a. ") :] if g.lower().startswith("a.k.a. ") else g for g in others]


def title_words(display_title: str) -> tuple[list[str], set[str], set[str]]:
    """(the main title's words, every other word of it a search may match: alternative titles, joined and split
    forms; aliases a search matches exactly or as a prefix but never with a typo: numbers as digits, initialisms,
    abbreviations). All made from the title itself: no list of films by hand."""
    head, others = alternative_titles(display_title)
    main = words(head)
    extra, aliases = set(), set()
    for text in [head, *others]:
        tokens = words(text)
        extra.update(tokens)
        # "Spider-Man" also answers to "spiderman"; "L'Atalante" to "atalante".
        for piece in text.replace("'", " ' ").split():
            joined = words(piece)
            if len(joined) > 1:
                extra.add("".join(joined))
        extra.update(words(text.replace("'", " ").replace("’", " ")))
        aliases.update(numbers_as_digits(tokens))  # "Episode V" answers to "5", "Ocean's Eleven" to "11"
        aliases.update(initialisms(text))  # "The Lord of the Rings: ..." answers to "lotr"
        aliases.update(SAME_WORD[w] for w in tokens if w in SAME_WORD)  # "Vol." answers to "volume"
    extra -= set(main)
    return main, extra, aliases - extra - set(main)


def title_cores(display_title: str) -> list[tuple[str, ...]]:
    """The main and alternative titles' words without articles, each a title a query may match whole or start."""
    head, others = alternative_titles(display_title)
    return [_without_articles(words(text)) for text in [head, *others]]


def _without_articles(tokens: list[str]) -> tuple[str, ...]:
    """Articles left out, as queries leave them out; "i" after "episode" or "part" is a number and stays."""
    return tuple(w for i, w in enumerate(tokens) if not is_article(w) or (i and announces_number(tokens[i - 1])))


def build_index(
    token: str,
    rows: list[tuple[int, str, int | None]],
    genre_links: list[tuple[int, str]],
    tag_links: Sequence[tuple[int, str, float]] = (),
) -> TitleIndex:
    """rows: (movie id, display title, year) sorted by id; genre_links: (movie id, genre name); tag_links:
    (movie id, tag name, strength)."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    years = np.array([r[2] or 0 for r in rows], dtype=np.int32)
    postings: dict[str, list[int]] = {}
    cores, names = [], []
    typed_words: set[str] = set()  # words a typo may reach; aliases are matched as typed
    for position, (_, title, _) in enumerate(rows):
        main, extra, aliases = title_words(title)
        cores.append(title_cores(title))
        names.append(tuple(main))
        typed_words.update(main)
        typed_words.update(extra)
        for word in set(main) | extra | aliases:
            postings.setdefault(word, []).append(position)
    vocabulary = sorted(postings)
    by_length: dict[int, list[int]] = {}
    for i, word in enumerate(vocabulary):
        if word in typed_words:
            by_length.setdefault(len(word), []).append(i)
    genres: dict[str, list[int]] = {}
    positions = np.searchsorted(ids, np.array([g[0] for g in genre_links], dtype=np.int64))
    for position, (_, name) in zip(positions.tolist(), genre_links):
        genres.setdefault(name, []).append(position)
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1].casefold(), rows[i][0]))
    title_order = np.empty(len(rows), dtype=np.int64)
    title_order[order] = np.arange(len(rows))
    tag_words: dict[str, dict[int, float]] = {}  # word -> movie position -> the strongest tag with it
    tag_positions = np.searchsorted(ids, np.array([t[0] for t in tag_links], dtype=np.int64))
    for position, (movie_id, name, strength) in zip(tag_positions.tolist(), tag_links):
        if position < len(ids) and ids[position] == movie_id:
            for word in set(words(name)):
                best = tag_words.setdefault(word, {})
                best[position] = max(strength, best.get(position, 0.0))
    tag_vocabulary = sorted(tag_words)
    tag_postings = [
        (np.fromiter(tag_words[w].keys(), dtype=np.int64), np.fromiter(tag_words[w].values(), dtype=np.float64))
        for w in tag_vocabulary
    ]
    return TitleIndex(
        token,
        ids,
        years,
        cores,
        names,
        vocabulary,
        [np.array(postings[w], dtype=np.int64) for w in vocabulary],
        by_length,
        {name: np.array(p, dtype=np.int64) for name, p in genres.items()},
        tag_vocabulary,
        tag_postings,
        title_order=title_order,
    )


@dataclass(frozen=True)
class _WordMatch:
    mask: np.ndarray  # (num_movies,) bool: the movie has a word matching this query word
    typos: np.ndarray  # (num_movies,) int8: fewest edits among its matching words (0 exact or prefix)
    whole: frozenset[str]  # title words that match it whole (itself, or within the edit bound)
    prefix: str  # title words starting with this match it partly ("" when not allowed)
    number: int | None = None  # the number it stands for: "5", "v" and "five" match one another


def _max_edits(word: str) -> int:
    return 0 if len(word) < 4 or word.isdigit() else 1 if len(word) < 7 else 2


def _match_word(index: TitleIndex, word: str, allow_prefix: bool, previous: str = "") -> _WordMatch:
    mask = np.zeros(index.num_movies, dtype=bool)
    typos = np.full(index.num_movies, 99, dtype=np.int8)
    whole = {word}
    number = number_of(word, previous)
    for form in {word} if number is None else {word, str(number)}:  # titles index their numbers as digits too
        found = _word_at(index, form)
        if found >= 0:
            hits = index.postings[found]
            mask[hits], typos[hits] = True, 0
    at = bisect.bisect_left(index.vocabulary, word)
    if allow_prefix:
        end = bisect.bisect_left(index.vocabulary, word + "\x7f", lo=at)
        if end > at:
            hits = np.concatenate(index.postings[at:end])
            mask[hits], typos[hits] = True, 0
    edits = _max_edits(word)
    if edits:
        near = [
            i for length in range(len(word) - edits, len(word) + edits + 1) for i in index.by_length.get(length, ())
        ]
        choices = [index.vocabulary[i] for i in near]
        for _, distance, j in process.extract(
            word, choices, scorer=Levenshtein.distance, score_cutoff=edits, limit=None
        ):
            if distance == 0:
                continue
            hits = index.postings[near[j]]
            typos[hits] = np.minimum(typos[hits], distance)
            mask[hits] = True
            whole.add(choices[j])
    return _WordMatch(mask, typos, frozenset(whole), word if allow_prefix else "", number)


WHOLE_TITLE, TITLE_START, PARTLY_TYPED_START, ANYWHERE = 4, 3, 2, 1


def _fits(title_word: str, previous: str, match: _WordMatch) -> int:
    """2 the query word matches the title word whole, 1 as a prefix, 0 not."""
    if title_word in match.whole or (match.number is not None and number_of(title_word, previous) == match.number):
        return 2
    return 1 if match.prefix and title_word.startswith(match.prefix) else 0


def _structure(cores: list[tuple[str, ...]], matches: list[_WordMatch]) -> int:
    """How the query meets the best of the movie's titles (main or alternative): the whole title, the title's
    start with every word whole, its start with the last word typed in part, or only somewhere."""
    best = ANYWHERE
    for core in cores:
        if len(core) < len(matches):
            continue
        whole = True
        for i, match in enumerate(matches):
            fit = _fits(core[i], core[i - 1] if i else "", match)
            if not fit:
                break
            whole = whole and fit == 2
        else:
            if whole and len(core) == len(matches):
                return WHOLE_TITLE
            best = max(best, TITLE_START if whole else PARTLY_TYPED_START)
    return best


def rank(index: TitleIndex, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
    """Movie positions matching the query, best first; `candidates` (bool mask) restricts them."""
    typed = words(query)[:MAX_QUERY_WORDS]
    years = [int(w) for w in typed if len(w) == 4 and w.isdigit() and MIN_YEAR <= int(w) <= MAX_YEAR]
    # "i" after "episode" or "part" is a number, not the Italian article.
    kept = list(_without_articles(typed))
    required = [w for w in kept if not (w.isdigit() and int(w) in years)]
    year_required = not required
    if year_required:  # "1984", "2001": the number is the query, met by the title's words or the year
        required = kept or typed
    if not required:
        return np.zeros(0, dtype=np.int64)
    matches = [
        _match_word(
            index,
            w,
            allow_prefix=(i == len(required) - 1 or len(w) >= 3) and not w.isdigit(),
            previous=required[i - 1] if i else "",
        )
        for i, w in enumerate(required)
    ]
    mask = np.ones(index.num_movies, dtype=bool) if candidates is None else candidates.copy()
    typos = np.zeros(index.num_movies, dtype=np.int32)
    for word, match in zip(required, matches):
        allowed = match.mask
        if year_required and word.isdigit() and int(word) in years:
            allowed = allowed | (index.years == int(word))
            typos += np.where(match.mask, match.typos, 0)
        else:
            typos += match.typos
        mask &= allowed
    positions = np.flatnonzero(mask)
    missed_years = np.zeros(len(positions), dtype=np.int32)
    for year in years:
        at = _word_at(index, str(year))
        in_title = np.isin(positions, index.postings[at]) if at >= 0 else False
        missed_years += ~((index.years[positions] == year) | in_title)
    popularity = index.popularity[positions] if len(index.popularity) else np.zeros(len(positions))
    order = np.lexsort((index.ids[positions], -popularity, missed_years, typos[positions]))
    positions, keys = positions[order], np.stack([typos[positions], missed_years], axis=1)[order]
    head = positions[:MAX_RANKED]
    structure = np.array([_structure(index.cores[p], matches) for p in head.tolist()], dtype=np.int64)
    series = _series_order(index, head, structure, keys[: len(head)], len(required) >= 2)
    head_order = np.lexsort((np.arange(len(head)), series, -structure, keys[: len(head), 1], keys[: len(head), 0]))
    return np.concatenate([head[head_order], positions[MAX_RANKED:]])


SERIES_KNOWN_SHARE = 0.1  # a film with a tenth of the best known one's ratings is a main entry of the series


def _series_order(
    index: TitleIndex, head: np.ndarray, structure: np.ndarray, keys: np.ndarray, is_series_name: bool
) -> np.ndarray:
    """Among films whose titles all start with the query's whole words (a franchise: "harry potter", "star
    wars"), the best known (most rated) first; after it, for a name of two words or more, the series' main
    entries in release order, then its side pieces ("The Star Wars Holiday Special") by popularity. A single
    word ("star": more than one series) keeps popularity after the best known. 0 elsewhere: popularity decides."""
    order = np.zeros(len(head), dtype=np.int64)
    starts = np.flatnonzero(structure == TITLE_START)
    if len(starts) < 2 or not len(index.num_ratings):
        return order
    for group in np.unique(keys[starts], axis=0):  # equal typos and years: films that match equally
        members = starts[(keys[starts] == group).all(axis=1)]
        counts = index.num_ratings[head[members]]
        order[members] = 10_000  # after the main entries; among themselves, popularity (head's order)
        if is_series_name:
            main = members[counts >= SERIES_KNOWN_SHARE * counts.max()]
            years = index.years[head[main]].astype(np.int64)
            order[main] = np.where(years > 0, years, 9_999)
        order[members[np.argmax(counts)]] = 0  # ties: the more popular, as head is sorted
    return order


def series_entry(index: TitleIndex, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
    """ "harry potter 3": a series name and a number no title carries; the series' n-th main entry by release
    first, the rest after. Empty when the query is not of that form or names no series."""
    typed = words(query)[:MAX_QUERY_WORDS]
    number = number_of(typed[-1], typed[-2]) if len(typed) >= 2 else None
    if number is None or not 1 <= number <= 20:
        return np.zeros(0, dtype=np.int64)
    series = rank(index, " ".join(typed[:-1]), candidates)
    head = series[:MAX_RANKED]
    if len(head) < number:
        return np.zeros(0, dtype=np.int64)
    counts = index.num_ratings[head] if len(index.num_ratings) else np.zeros(len(head))
    name = tuple(typed[:-1])  # as typed: "die hard" is not "a hard day's night", though "die" may be an article

    def starts_with_name(title: tuple[str, ...]) -> bool:  # the title's own leading article may be left out
        return title[: len(name)] == name or (bool(title) and is_article(title[0]) and title[1 : len(name) + 1] == name)

    in_series = np.array([starts_with_name(index.names[p]) for p in head.tolist()], dtype=bool)
    main = np.flatnonzero(in_series & (counts >= SERIES_KNOWN_SHARE * counts.max(initial=0)))
    if len(main) < number:
        return np.zeros(0, dtype=np.int64)
    by_release = main[np.argsort(index.years[head[main]], kind="stable")]
    chosen = by_release[number - 1]
    return np.concatenate([[head[chosen]], np.delete(series, chosen)])


def tag_matches(index: TitleIndex, query: str, candidates: np.ndarray | None, exclude: np.ndarray) -> np.ndarray:
    """Movies whose tags hold every word of the query ("time travel", "pixar"; the last word may be typed in
    part), those the tags describe best first, then the more popular; none of `exclude` (the title matches)."""
    required = [w for w in words(query)[:MAX_QUERY_WORDS] if not is_article(w)]
    if not required or not index.tag_vocabulary:
        return np.zeros(0, dtype=np.int64)
    strength = np.full(index.num_movies, np.inf)
    for i, word in enumerate(required):
        at = bisect.bisect_left(index.tag_vocabulary, word)
        end = at + 1 if at < len(index.tag_vocabulary) and index.tag_vocabulary[at] == word else at
        if i == len(required) - 1:  # as you type
            end = bisect.bisect_left(index.tag_vocabulary, word + "\x7f", lo=at)
        best = np.zeros(index.num_movies)
        for positions, strengths in index.tag_postings[at:end]:
            np.maximum.at(best, positions, strengths)
        strength = np.minimum(strength, best)  # a movie is as strong a match as its weakest word
    mask = (strength > 0) & np.isfinite(strength)
    if candidates is not None:
        mask &= candidates
    mask[exclude] = False
    positions = np.flatnonzero(mask)
    popularity = index.popularity[positions] if len(index.popularity) else np.zeros(len(positions))
    return positions[np.lexsort((index.ids[positions], -popularity, -np.round(strength[positions], 1)))]


def _word_at(index: TitleIndex, word: str) -> int:
    at = bisect.bisect_left(index.vocabulary, word)
    return at if at < len(index.vocabulary) and index.vocabulary[at] == word else -1


def catalogue_token() -> str:
    """Changes whenever movies change: the token services set, plus the newest id and edit time, so a
    movie written by any other path (a shell, a script) is seen too. Three index lookups."""
    token = CatalogueVersion.objects.filter(id=1).values_list("token", flat=True).first() or ""
    latest = Movie.objects.aggregate(id=Max("id"), edited=Max("updated_at"))
    return f"{token}:{latest['id']}:{latest['edited'].isoformat() if latest['edited'] else ''}"


class IndexCache:
    """The process's index, rebuilt when the catalogue token changes; safe to share between threads."""

    def __init__(self) -> None:
        self._index: TitleIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> TitleIndex:
        token = catalogue_token()
        index = self._index
        if index is None or index.token != token:
            with self._lock:
                index = self._index
                if index is None or index.token != token:
                    index = self._index = _load(token)
        if time.monotonic() - index.stats_read_at > POPULARITY_SECONDS:
            _read_stats(index)
        return index

    def clear(self) -> None:
        self._index = None


def _load(token: str) -> TitleIndex:
    rows = list(Movie.objects.order_by("id").values_list("id", "display_title", "year"))
    links = list(Movie.genres.through.objects.values_list("movie_id", "genre__name"))
    tags = list(
        MovieTag.objects.filter(strength__gte=MIN_TAG_STRENGTH).values_list("movie_id", "tag__name", "strength")
    )
    index = build_index(token, rows, links, tags)
    _read_stats(index)
    return index


def _read_stats(index: TitleIndex) -> None:
    rows = Movie.objects.values_list("id", "popularity", "rated_score", "num_ratings")
    stats = {i: values for i, *values in rows}
    values = np.array([stats.get(i, (0.0, 0.0, 0)) for i in index.ids.tolist()], dtype=np.float64).reshape(-1, 3)
    index.popularity, index.rated_score, index.num_ratings = values[:, 0], values[:, 1], values[:, 2]
    index.stats_read_at = time.monotonic()


titles = IndexCache()


def search_ids(
    query: str, genre: str = "", year_from: int | None = None, year_to: int | None = None, sort: str = ""
) -> list[int]:
    """Movie ids matching the query and filters, best match first, or in `sort` order
    ("popular", "rated", "newest", "title")."""
    index = titles.get()
    candidates = None
    if genre or year_from is not None or year_to is not None:
        candidates = np.ones(index.num_movies, dtype=bool)
        if genre:
            candidates[:] = False
            candidates[index.genres.get(genre, np.zeros(0, dtype=np.int64))] = True
        if year_from is not None:
            candidates &= index.years >= year_from
        if year_to is not None:
            candidates &= (index.years <= year_to) & (index.years > 0)
    positions = rank(index, query, candidates)
    if not len(positions):
        positions = series_entry(index, query, candidates)
    positions = np.concatenate([positions, tag_matches(index, query, candidates, positions)])  # titles first
    # Keys of the matches only: a search sorted by relevance (the default) computes none.
    orders = {
        "popular": lambda p: -index.popularity[p],
        "rated": lambda p: -index.rated_score[p],
        "newest": lambda p: -index.years[p].astype(np.int64),
        "title": lambda p: index.title_order[p],
    }
    if sort in orders and len(positions):
        positions = positions[np.argsort(orders[sort](positions), kind="stable")]
    return index.ids[positions].tolist()
