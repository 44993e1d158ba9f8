"""Recommendations for people and movies, from Milvus search results, with a popular fallback."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from movies import selectors
from movies.models import Movie
from recommender.ml import corating, interleaving
from recommender.ml.data import Histories
from recommender.ml.diversity import mmr
from recommender.ml.scoring import CREDIT_NEIGHBOURS, Evidence, ScoringConfig, credited, rank, select_history
from recommender.models import Experiment, RecommenderState, TrainingRun
from recommender.vector_store import VectorStore, VectorStoreUnavailable, describe_error, search_filter

logger = logging.getLogger(__name__)
LIVE_RUN_CACHE_SECONDS = 10
_store: VectorStore | None = None
_live: tuple[float, TrainingRun | None] = (0.0, None)
_last_outage_logged = 0.0


class Source:
    PERSONAL = "personal"  # the live model's vectors
    CO_RATED = "co_rated"  # what people who rated the same movies rated (movies.CoRatedMovie): no model needed
    POPULAR = "popular"


CO_RATED_SCORING = corating.SERVED_SCORING  # what bench/quality's "co_rated_served" row scores
NO_MODEL_NOTE = "The recommender's first model is still training; until it is live, these picks come from what people who rated your movies also rated."
OUTAGE_NOTE = (
    "The recommender is unavailable for a moment; these picks come from what people who rated your movies also rated."
)


@dataclass
class Recommendation:
    movie: Movie
    score: float
    because: str = ""
    because_movie: Movie | None = None
    shared_genres: list[str] = field(default_factory=list)


@dataclass
class Recommendations:
    items: list[Recommendation]
    source: str
    note: str = ""
    run_id: int | None = None  # the run whose vectors ranked the list (personal and similar lists)
    experiment_id: int | None = None  # an interleaved list: the experiment, and each item's team (0 live, 1 challenger)
    teams: list[int] = field(default_factory=list)
    impression_id: int | None = None  # set when the list is logged as shown (recommender.impressions)


def vector_store() -> VectorStore:
    global _store
    if _store is None:
        _store = VectorStore(
            settings.MILVUS_URI,
            settings.MILVUS_TOKEN,
            settings.MILVUS_TIMEOUT_S,
            settings.MILVUS_ALIAS,
            breaker_s=settings.MILVUS_BREAKER_S,
            replicas=settings.MILVUS_REPLICAS,
        )
    return _store


def live_run() -> TrainingRun | None:
    """The run whose collection the alias points to; cached briefly so pages do not ask Milvus twice."""
    global _live
    checked_at, run = _live
    if time.monotonic() - checked_at < LIVE_RUN_CACHE_SECONDS:
        return run
    collection = vector_store().live_collection()
    run_id = vector_store().run_of_collection(collection) if collection else None
    run = TrainingRun.objects.filter(id=run_id).first() if run_id else None
    _live = (time.monotonic(), run)
    return run


def _repair_live_record(run_id: int | None) -> None:
    """The health probe's repair: the database's record of the live run follows the alias (Milvus is the truth)
    should a move have been made outside runs.py. Pages only read; publish, make live and roll back record."""
    state = RecommenderState.current()
    if state.live_run_id != run_id and (run_id is None or TrainingRun.objects.filter(id=run_id).exists()):
        RecommenderState.objects.filter(id=state.id).update(live_run_id=run_id)


def recorded_live_run() -> TrainingRun | None:
    """The live run as last recorded, for when Milvus cannot be asked."""
    return RecommenderState.current().live_run


@dataclass(frozen=True)
class ServingStatus:
    """Whether pages can be personal now, in the words staff and monitors read."""

    live_run_id: int | None
    can_serve: bool
    reason: str = ""

    def __str__(self) -> str:
        if self.can_serve:
            if self.live_run_id:
                return f"live run {self.live_run_id}, served from Milvus"
            return "no run is live yet; pages serve co-rated picks (from ratings alone, no model) meanwhile"
        run = f"live run {self.live_run_id}" if self.live_run_id else "no live run known"
        return f"{run}, but Milvus cannot serve it ({self.reason}); pages serve co-rated picks, else popular movies"


def serving_status() -> ServingStatus:
    """Asks Milvus what pages would (through the breaker: at once while it is failing), and loads a live
    collection a restart left released, so a probe repairs what the next page would otherwise meet."""
    store = vector_store()
    try:
        collection = store.live_collection()
        if collection:
            store.ensure_loaded(collection)
    except VectorStoreUnavailable as error:
        known = _live[1] or recorded_live_run()  # the last one this process saw, else the one recorded at publish
        return ServingStatus(known.id if known else None, False, store.failure() or _reason(error))
    live_id = store.run_of_collection(collection) if collection else None
    _repair_live_record(live_id)
    return ServingStatus(live_id, True)


def serving_status_now(live_run_id: int | None = None) -> ServingStatus | None:
    """What this process's pages see without asking Milvus: the status when their reads fall back, else None.
    Memory only (the live run last seen here, else the one given): a health probe answers even when the
    database hangs."""
    failure = vector_store().failure()
    if not failure:
        return None
    return ServingStatus(_live[1].id if _live[1] else live_run_id, False, failure)


def _reason(error: Exception) -> str:
    return describe_error(error.__cause__ or error)


def forget_live_run() -> None:
    global _live
    _live = (0.0, None)


def recommend_movies_for(
    user: User | AnonymousUser, limit: int = 20, exclude: frozenset[int] = frozenset()
) -> Recommendations:
    """The person's picks, never a movie they hid ("not interested") or one in `exclude` (the API's exclude=);
    the rest of the ranking fills their places."""
    history = selectors.rating_history(user) if user.is_authenticated else []
    excluded = frozenset(exclude) | selectors.hidden_movie_ids(user)
    if not history:
        return _popular(user, limit, "Rate a few movies and this page becomes yours.", excluded)
    try:
        items = _personal(user, history, limit, excluded)
    except VectorStoreUnavailable as error:
        _log_outage(error)
        return _co_rated(history, limit, OUTAGE_NOTE, excluded) or _popular(
            user, limit, "Personal picks are unavailable for a moment; here are popular movies.", excluded
        )
    if items is None:
        return _co_rated(history, limit, NO_MODEL_NOTE, excluded) or _popular(
            user, limit, "Recommendations are being prepared; here are popular movies meanwhile.", excluded
        )
    return items


def _history_arrays(history: list[tuple[int, float, int]]) -> Histories:
    return Histories(
        np.array([0, len(history)]),
        np.array([h[0] for h in history], dtype=np.int64),
        np.array([h[1] for h in history], dtype=np.float32),
        np.array([h[2] for h in history], dtype=np.int64),
    )


def _co_rated(
    history: list[tuple[int, float, int]], limit: int, note: str, excluded: frozenset[int] = frozenset()
) -> Recommendations | None:
    """Personal picks without a model: the serving rule over the rated movies' co-rated lists (None when the
    catalogue has none yet, before the first import's lists are written)."""
    histories = _history_arrays(history)
    evidence = select_history(histories, CO_RATED_SCORING)
    lists = selectors.co_rated_lists(evidence.movies.tolist(), CO_RATED_SCORING.neighbors_per_item)
    if not lists:
        return None
    rows = [tuple(np.asarray(part) for part in lists.get(int(m), ([], []))) for m in evidence.movies]
    ids, scores = _padded(rows, CO_RATED_SCORING.neighbors_per_item)
    ranked = rank(evidence, _usable(ids, excluded), scores, histories, CO_RATED_SCORING, limit)
    picks = [
        (float(score), int(movie), int(source))
        for movie, score, source in zip(ranked.movies[0], ranked.scores[0], ranked.sources[0])
        if movie >= 0
    ]
    if not picks:
        return None
    liked = [int(m) for m, is_liked in zip(evidence.movies, evidence.liked) if is_liked]
    own_lists = selectors.co_rated_lists([p for _, p, _ in picks], CREDIT_NEIGHBOURS)
    explained = credited(picks, liked, {movie: ids for movie, (ids, _) in own_lists.items()})
    return Recommendations(_explained(explained, liked), Source.CO_RATED, note)


def _personal(
    user: User | AnonymousUser,
    history: list[tuple[int, float, int]],
    limit: int,
    excluded: frozenset[int] = frozenset(),
) -> Recommendations | None:
    """The live run's picks; for a person in a running experiment, interleaved with the challenger's (one more
    Milvus read: the challenger's lists of the same rated movies)."""
    run = live_run()
    if run is None:
        return None
    store = vector_store()
    histories = _history_arrays(history)
    scoring = run.training_config.scoring
    evidence = select_history(histories, scoring)
    picks = _ranked_picks(store, run.id, None, scoring, evidence, histories, limit, excluded)
    if picks is None:
        return None
    liked = [int(m) for m, is_liked in zip(evidence.movies, evidence.liked) if is_liked]
    experiment = _experiment_for(user, run)
    teams: list[int] = []
    if experiment is not None:
        picks, teams = _interleaved(store, experiment, picks, histories, limit, excluded, user)
    items = _explained(_credible(store, run.id, picks, liked), liked)
    result = Recommendations(items, Source.PERSONAL, run_id=run.id)
    if experiment is not None and teams:
        team_of = {movie: team for (_, movie, _), team in zip(picks, teams)}
        result.experiment_id, result.teams = experiment.id, [team_of[i.movie.id] for i in items]
    return result


def _ranked_picks(
    store: VectorStore,
    run_id: int,
    collection: str | None,
    scoring: ScoringConfig,
    evidence: Evidence,
    histories: Histories,
    limit: int,
    excluded: frozenset[int],
) -> list[tuple[float, int, int]] | None:
    """(score, movie, source) best first: run `run_id`'s served rule over the rated movies' neighbour lists in
    the live collection, or in `collection` (an experiment's challenger); None when it knows none of them."""
    name = collection or store.collection_for_run(run_id)
    lists = None
    if settings.SERVE_FROM_NEIGHBOR_LISTS and store.has_neighbor_lists(name):
        lists = _stored_neighbors(store, evidence.movies.tolist(), scoring.neighbors_per_item, collection)
    if lists is None:  # published without lists (too many movies, or before they existed)
        lists = _searched_neighbors(store, evidence.movies.tolist(), scoring.neighbors_per_item, collection)
    if lists is None:
        return None
    weight = settings.RECOMMENDATION_DIVERSITY_PERCENT / 100
    pool = max(DIVERSITY_POOL, limit) if weight > 0 else limit  # its first `limit` are the list served at 0
    ranked = rank(evidence, _usable(lists[0], excluded), lists[1], histories, scoring, pool)
    picks = [
        (float(score), int(movie), int(source))
        for movie, score, source in zip(ranked.movies[0], ranked.scores[0], ranked.sources[0])
        if movie >= 0
    ]
    return _diversified(store, collection, picks, limit, weight) if pool > limit else picks


DIVERSITY_POOL = 50  # candidates the re-ranking chooses from (bench/diversity's pool)


def _diversified(
    store: VectorStore, collection: str | None, picks: list[tuple[float, int, int]], limit: int, weight: float
) -> list[tuple[float, int, int]]:
    """Maximal marginal relevance over the pool's vectors (recommender.ml.diversity), one more Milvus read.
    The relevance is the served order's (scores made non-increasing, as the cap reorders them), so weight 0
    would be the served list exactly."""
    if len(picks) <= 1:
        return picks[:limit]
    vectors = store.get_vectors([movie for _, movie, _ in picks], collection)
    kept = [p for p in picks if p[1] in vectors]
    if len(kept) <= 1:
        return picks[:limit]
    relevance = np.minimum.accumulate(np.array([score for score, _, _ in kept], dtype=np.float64))
    order = mmr(relevance, np.stack([vectors[movie] for _, movie, _ in kept]), limit, weight)
    return [kept[i] for i in order]


EXPERIMENT_CACHE_SECONDS = 10
_experiment: tuple[float, Experiment | None] = (0.0, None)


def running_experiment() -> Experiment | None:
    """The experiment now running, if any; cached briefly like the live run, so a page adds no query."""
    global _experiment
    checked_at, experiment = _experiment
    if time.monotonic() - checked_at < EXPERIMENT_CACHE_SECONDS:
        return experiment
    experiment = Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("challenger_run").first()
    _experiment = (time.monotonic(), experiment)
    return experiment


def forget_experiment() -> None:
    global _experiment
    _experiment = (0.0, None)


def _experiment_for(user: User | AnonymousUser, run: TrainingRun) -> Experiment | None:
    """The running experiment when this person is in its share and its live run is the one serving now."""
    experiment = running_experiment()
    if experiment is None or not user.is_authenticated or experiment.live_run_id != run.id:
        return None
    return experiment if interleaving.in_experiment(user.id, experiment.salt, experiment.share) else None


def _interleaved(
    store: VectorStore,
    experiment: Experiment,
    picks: list[tuple[float, int, int]],
    histories: Histories,
    limit: int,
    excluded: frozenset[int],
    user: User | AnonymousUser,
) -> tuple[list[tuple[float, int, int]], list[int]]:
    """Team-draft interleaving of the live picks and the challenger's; the live list alone (no teams) when the
    challenger's collection cannot be read, so an experiment never costs a person their page."""
    challenger = experiment.challenger_run
    scoring = challenger.training_config.scoring
    try:
        theirs = _ranked_picks(
            store,
            challenger.id,
            store.collection_for_run(challenger.id),
            scoring,
            select_history(histories, scoring),
            histories,
            limit,
            excluded,
        )
    except VectorStoreUnavailable as error:
        _log_outage(error)
        return picks, []
    if not theirs:
        return picks, []
    ours = [movie for _, movie, _ in picks]
    their_movies = [movie for _, movie, _ in theirs]
    seed = interleaving.draft_seed(int(user.pk or 0), experiment.salt, ours, their_movies)
    movies, teams = interleaving.team_draft(ours, their_movies, limit, seed)
    by_movie = {movie: (score, movie, source) for score, movie, source in [*theirs, *picks]}  # live's row wins
    return [by_movie[m] for m in movies], teams


Neighbours = tuple[np.ndarray, np.ndarray]  # (len(movies), n) ids and scores, -1 / 0 padded


def _padded(rows: Sequence[tuple[np.ndarray, ...]], n: int) -> Neighbours:
    ids = np.full((len(rows), n), -1, dtype=np.int64)
    scores = np.zeros((len(rows), n), dtype=np.float32)
    for i, (row_ids, row_scores) in enumerate(rows):
        ids[i, : len(row_ids[:n])], scores[i, : len(row_scores[:n])] = row_ids[:n], row_scores[:n]
    return ids, scores


def _stored_neighbors(
    store: VectorStore, movies: list[int], n: int, collection: str | None = None
) -> Neighbours | None:
    """The evidence movies' nearest movies as stored at publish (itself excluded): one read, no search."""
    lists = store.get_neighbors(movies, collection)
    if not any(len(lists.get(m, ((), ()))[0]) for m in movies):
        return None
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    return _padded([tuple(np.asarray(part) for part in lists.get(m, empty)) for m in movies], n)


def _searched_neighbors(
    store: VectorStore, movies: list[int], n: int, collection: str | None = None
) -> Neighbours | None:
    """For a collection published without lists: one batched search, each movie's own hit dropped."""
    vectors = store.get_vectors(movies, collection)
    found = [m for m in movies if m in vectors]
    if not found:
        return None
    hits = dict(zip(found, store.search(np.stack([vectors[m] for m in found]), n + 1, collection=collection)))
    rows = []
    for movie in movies:
        row = [h for h in hits.get(movie, []) if h.movie_id != movie][:n]
        rows.append(
            (np.array([h.movie_id for h in row], dtype=np.int64), np.array([h.score for h in row], dtype=np.float32))
        )
    return _padded(rows, n)


def _usable(ids: npt.NDArray[np.int64], excluded: frozenset[int] = frozenset()) -> npt.NDArray[np.int64]:
    """Neighbour ids with movies deleted since publishing and the excluded ones blanked out (-1), so the ranking
    refills from the rest: stored lists and the collection learn of a deletion later, the movies table at once."""
    candidates = np.unique(ids[ids >= 0])
    existing = selectors.existing_movie_ids(candidates.tolist())
    gone = candidates[~np.isin(candidates, np.fromiter(existing - excluded, dtype=np.int64))]
    return np.where(np.isin(ids, gone), -1, ids) if len(gone) else ids


def _credible(
    store: VectorStore, run_id: int, picks: list[tuple[float, int, int]], liked: list[int], n: int = CREDIT_NEIGHBOURS
) -> list[tuple[float, int, int]]:
    """Each pick credited to the liked movie nearest to it in its own stored list (its `n` nearest movies), or
    to none (-1). The largest contributor to a score is mostly the newest rating, and a broad movie lists many
    picks among its neighbours: "Because you liked Fargo" on Return of the Jedi, with Star Wars liked too, is
    not a reason anyone believes. One read of the picks' stored lists; a pick without one keeps its source."""
    if not picks or not store.has_neighbor_lists(store.collection_for_run(run_id)):
        return picks
    lists = {movie: ids[:n].tolist() for movie, (ids, _) in store.get_neighbors([p for _, p, _ in picks]).items()}
    return credited(picks, liked, lists)


def _explained(ranked: list[tuple[float, int, int]], liked: list[int] | None = None) -> list[Recommendation]:
    """Rows for the picks and for the liked movies behind them, in one query. A pick without a credible liked
    movie behind it names the genres it shares with the movies liked, or nothing."""
    wanted = {i for _, m, s in ranked for i in (m, s)} | set(liked or [])
    movies = {m.id: m for m in selectors.movies_in_order(list(wanted))}
    liked_genres = {g.name for i in liked or [] if i in movies for g in movies[i].genres.all()}
    items = []
    for score, movie_id, source_id in ranked:
        movie, source = movies.get(movie_id), movies.get(source_id)
        if movie is None:
            continue
        genres = {g.name for g in movie.genres.all()}
        if source:
            shared = sorted(genres & {g.name for g in source.genres.all()})
            because = f"Because you liked {source.display_title}"
        else:
            shared = sorted(genres & liked_genres)
            because = f"Shares {', '.join(shared[:3])} with movies you liked" if shared else ""
            shared = []
        items.append(Recommendation(movie, score, because, source, shared))
    return items


def _popular(
    user: User | AnonymousUser, limit: int, note: str, excluded: frozenset[int] = frozenset()
) -> Recommendations:
    movies = selectors.popular_movies(limit, user if user.is_authenticated else None, excluded)
    return Recommendations([Recommendation(m, 0.0, "Popular with other viewers") for m in movies], Source.POPULAR, note)


def similar_movies(
    movie: Movie,
    limit: int = 10,
    genre: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    exclude: frozenset[int] = frozenset(),
    user: User | AnonymousUser | None = None,
) -> Recommendations:
    """Movies most like this one: the live model's nearest (filters applied inside the Milvus search) blended
    with its co-rated movies (corating.blended_similarity); before a model is live, while Milvus is down, or for
    a movie the model has not seen, its co-rated movies alone. Two Milvus calls, as for the model alone. Never
    a movie in `exclude` or one `user` hid."""
    if user is not None:
        exclude = frozenset(exclude) | selectors.hidden_movie_ids(user)
    filtered = bool(genre or year_from is not None or year_to is not None)
    co = [
        (m, score)
        for m, score in selectors.co_rated_movies(movie, corating.STORED_PER_MOVIE, genre, year_from, year_to)
        if m.id not in exclude
    ]
    try:
        vectors = vector_store().get_vectors([movie.id, *(m.id for m, _ in co)])
        if movie.id not in vectors:
            return _similar_co_rated(movie, limit, co, filtered)
        # Twice the list and one: movies deleted since publishing are dropped below and the rest refill the list.
        # A movie off the co-rated lists is in the blend's top `limit` only if it is in the model's (the bonus
        # is never negative), so these hits and the co-rated movies hold the whole blended top `limit`.
        query = vectors[movie.id]
        wanted = 2 * limit + 1 + len(exclude)
        hits = vector_store().search(query[None, :], wanted, search_filter(genre, year_from, year_to))[0]
    except VectorStoreUnavailable as error:
        _log_outage(error)
        return _similar_co_rated(movie, limit, co, filtered)
    model = {h.movie_id: h.score for h in hits if h.movie_id != movie.id and h.movie_id not in exclude}
    model.update({m.id: float(vectors[m.id] @ query) for m, _ in co if m.id in vectors and m.id not in model})
    cosine = {m.id: score for m, score in co}
    ids = np.array(sorted(model), dtype=np.int64)
    scores = corating.blended_similarity(
        np.array([model[i] for i in ids]), np.array([cosine.get(int(i), 0.0) for i in ids])
    )
    order = np.lexsort((ids, -scores))
    ranked = [(float(scores[i]), int(ids[i]), movie.id) for i in order]
    items = _explained(ranked)[:limit]
    for item in items:
        item.because = f"Similar to {movie.display_title}"
    return Recommendations(items, Source.PERSONAL, run_id=_live[1].id if _live[1] else None)  # memory only


def _similar_co_rated(movie: Movie, limit: int, found: list[tuple[Movie, float]], filtered: bool) -> Recommendations:
    found = [(m, score) for m, score in found if m.id != movie.id][:limit]
    if not found:
        note = "No similar movies match these filters yet." if filtered else "No similar movies yet."
        return Recommendations([], Source.CO_RATED, note)
    items = [Recommendation(m, score, "Often rated by the same people") for m, score in found]
    return Recommendations(items, Source.CO_RATED, "From ratings alone: movies rated by many of the same people.")


def _log_outage(error: Exception) -> None:
    """Once a minute at most, so an outage does not flood the logs."""
    global _last_outage_logged
    if time.monotonic() - _last_outage_logged > 60:
        _last_outage_logged = time.monotonic()
        logger.warning("vector store unavailable, serving popular movies: %s", error)
