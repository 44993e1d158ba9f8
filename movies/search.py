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
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from movies.titles import is_article, split_title, words

MAX_QUERY_WORDS = 8
MAX_RANKED = 3000  # candidates whose title structure is examined; the rest by the cheap keys only
POPULARITY_SECONDS = 60.0
MIN_YEAR, MAX_YEAR = 1870, 2100


@dataclass
class TitleIndex:
    token: str  # the CatalogueVersion token it was built from
    ids: np.ndarray  # (num_movies,) Movie.id, ascending
    years: np.ndarray  # (num_movies,) 0 where unknown
    core: list[tuple[str, ...]]  # the main title's words without articles, in order
    vocabulary: list[str]  # sorted distinct words (main, alternative titles, joined forms)
    postings: list[np.ndarray]  # per vocabulary word: movie positions
    by_length: dict[int, list[int]]  # word length -> vocabulary positions, for bounded fuzzy matching
    genres: dict[str, np.ndarray]  # genre name -> movie positions
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rated_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    title_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rank by display title
    stats_read_at: float = 0.0

    @property
    def num_movies(self) -> int:
        return len(self.ids)


def title_words(display_title: str) -> tuple[list[str], set[str]]:
    """(the main title's words, every other word a search may match: alternative titles, joined and split forms)."""
    head, groups = split_title(display_title)
    main = words(head)
    extra = set()
    for group in groups:
        if not group[:4].isdigit():
            extra.update(words(group))
    for text in [head, *groups]:
        # "Spider-Man" also answers to "spiderman"; "L'Atalante" to "atalante".
        for piece in text.replace("'", " ' ").split():
            joined = words(piece)
            if len(joined) > 1:
                extra.add("".join(joined))
        extra.update(words(text.replace("'", " ").replace("’", " ")))
    return main, extra - set(main)


def build_index(token: str, rows: list[tuple[int, str, int | None]], genre_links: list[tuple[int, str]]) -> TitleIndex:
    """rows: (movie id, display title, year) sorted by id; genre_links: (movie id, genre name)."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    years = np.array([r[2] or 0 for r in rows], dtype=np.int32)
    postings: dict[str, list[int]] = {}
    core = []
    for position, (_, title, _) in enumerate(rows):
        main, extra = title_words(title)
        core.append(tuple(w for w in main if not is_article(w)))
        for word in set(main) | extra:
            postings.setdefault(word, []).append(position)
    vocabulary = sorted(postings)
    by_length: dict[int, list[int]] = {}
    for i, word in enumerate(vocabulary):
        by_length.setdefault(len(word), []).append(i)
    genres: dict[str, list[int]] = {}
    positions = np.searchsorted(ids, np.array([g[0] for g in genre_links], dtype=np.int64))
    for position, (_, name) in zip(positions.tolist(), genre_links):
        genres.setdefault(name, []).append(position)
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1].casefold(), rows[i][0]))
    title_order = np.empty(len(rows), dtype=np.int64)
    title_order[order] = np.arange(len(rows))
    return TitleIndex(
        token,
        ids,
        years,
        core,
        vocabulary,
        [np.array(postings[w], dtype=np.int64) for w in vocabulary],
        by_length,
        {name: np.array(p, dtype=np.int64) for name, p in genres.items()},
        title_order=title_order,
    )


@dataclass(frozen=True)
class _WordMatch:
    mask: np.ndarray  # (num_movies,) bool: the movie has a word matching this query word
    typos: np.ndarray  # (num_movies,) int8: fewest edits among its matching words (0 exact or prefix)
    whole: frozenset[str]  # title words that match it whole (itself, or within the edit bound)
    prefix: str  # title words starting with this match it partly ("" when not allowed)


def _max_edits(word: str) -> int:
    return 0 if len(word) < 4 or word.isdigit() else 1 if len(word) < 7 else 2


def _match_word(index: TitleIndex, word: str, allow_prefix: bool) -> _WordMatch:
    mask = np.zeros(index.num_movies, dtype=bool)
    typos = np.full(index.num_movies, 99, dtype=np.int8)
    whole = {word}
    at = bisect.bisect_left(index.vocabulary, word)
    if at < len(index.vocabulary) and index.vocabulary[at] == word:
        hits = index.postings[at]
        mask[hits], typos[hits] = True, 0
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
    return _WordMatch(mask, typos, frozenset(whole), word if allow_prefix else "")


def _structure(core: tuple[str, ...], matches: list[_WordMatch]) -> int:
    """3 the whole title, 2 the title's start (the last word may be typed in part), 1 anywhere."""

    def fits(title_word: str, match: _WordMatch) -> int:  # 2 whole, 1 partly, 0 not
        return 2 if title_word in match.whole else 1 if match.prefix and title_word.startswith(match.prefix) else 0

    if len(core) >= len(matches):
        fit = [fits(w, m) for w, m in zip(core, matches)]
        if all(fit):
            return 3 if len(core) == len(matches) and 1 not in fit else 2
    return 1


def rank(index: TitleIndex, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
    """Movie positions matching the query, best first; `candidates` (bool mask) restricts them."""
    typed = words(query)[:MAX_QUERY_WORDS]
    years = [int(w) for w in typed if len(w) == 4 and w.isdigit() and MIN_YEAR <= int(w) <= MAX_YEAR]
    required = [w for w in typed if not is_article(w) and not (w.isdigit() and int(w) in years)]
    year_required = not required
    if year_required:  # "1984", "2001": the number is the query, met by the title's words or the year
        required = [w for w in typed if not is_article(w)] or typed
    if not required:
        return np.zeros(0, dtype=np.int64)
    matches = [
        _match_word(index, w, allow_prefix=(i == len(required) - 1 or len(w) >= 3) and not w.isdigit())
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
    structure = np.array([_structure(index.core[p], matches) for p in head.tolist()], dtype=np.int64)
    head_order = np.lexsort((np.arange(len(head)), -structure, keys[: len(head), 1], keys[: len(head), 0]))
    return np.concatenate([head[head_order], positions[MAX_RANKED:]])


def _word_at(index: TitleIndex, word: str) -> int:
    at = bisect.bisect_left(index.vocabulary, word)
    return at if at < len(index.vocabulary) and index.vocabulary[at] == word else -1


def catalogue_token() -> str:
    """Changes whenever movies change: the token services set, plus the newest id and edit time, so a
    movie written by any other path (a shell, a script) is seen too. Three index lookups."""
    from django.db.models import Max

    from movies.models import CatalogueVersion, Movie

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
    from movies.models import Movie

    rows = list(Movie.objects.order_by("id").values_list("id", "display_title", "year"))
    links = list(Movie.genres.through.objects.values_list("movie_id", "genre__name"))
    index = build_index(token, rows, links)
    _read_stats(index)
    return index


def _read_stats(index: TitleIndex) -> None:
    from movies.models import Movie

    stats = dict((i, (p, r)) for i, p, r in Movie.objects.values_list("id", "popularity", "rated_score"))
    values = np.array([stats.get(i, (0.0, 0.0)) for i in index.ids.tolist()], dtype=np.float64).reshape(-1, 2)
    index.popularity, index.rated_score = values[:, 0], values[:, 1]
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
