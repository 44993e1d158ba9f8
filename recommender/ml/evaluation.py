"""Leave-last-out split, full-ranking metrics, and the most-rated / ItemKNN / EASE baselines."""

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import linalg, sparse

from recommender.ml.corating import co_rated, rater_matrix
from recommender.ml.data import Histories, Interactions
from recommender.ml.scoring import (
    LIKED_STARS,
    ScoringConfig,
    history_weight_matrix,
    rank,
    select_history,
    top_neighbors,
)

K = 10
RECALL_K = 20
# (users, movies, stars, timestamps), one entry per rating
Ratings = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]


@dataclass(frozen=True)
class Split:
    """Per user by time: last rating -> test, second to last -> validation, the rest -> train.

    Users and movies are dense indices here (0..num_users-1, 0..num_movies-1)."""

    num_users: int
    num_movies: int
    train: Ratings
    validation: npt.NDArray[np.int64]  # (num_users,) movie index, -1 where the user has < 3 ratings
    test: npt.NDArray[np.int64]  # (num_users,) movie index, -1 likewise
    validation_stars: npt.NDArray[np.float32]  # (num_users,) stars of the validation rating
    validation_times: npt.NDArray[np.int64]  # (num_users,) its timestamp

    def ratings(self, include_validation: bool, only_held_out: bool = False) -> Ratings:
        """(users, movies, stars, timestamps) of train, plus each user's validation rating when asked;
        `only_held_out`: of the users with held-out ratings alone (at 25M ratings with 5,000 users held out,
        about 3% of the rows, where the whole set costs about 1.5 GB a copy)."""
        users, movies, stars, times = self.train
        if only_held_out:
            keep = self.validation[users] >= 0
            users, movies, stars, times = users[keep], movies[keep], stars[keep], times[keep]
        if not include_validation:
            return users, movies, stars, times
        has = self.validation >= 0
        return (
            np.concatenate([users, np.flatnonzero(has)]),
            np.concatenate([movies, self.validation[has]]),
            np.concatenate([stars, self.validation_stars[has]]),
            np.concatenate([times, self.validation_times[has]]),
        )

    def history_matrix(self, include_validation: bool) -> sparse.csr_matrix:
        users, movies, _, _ = self.ratings(include_validation)
        return rater_matrix(users, movies, self.num_users, self.num_movies)


def tie_order(num_ratings: int, seed: int) -> npt.NDArray[np.int64]:
    """A seeded random key that orders ratings given in the same second. Any order the data does not hold (movie
    ids, file rows) would leak: ml-100k's ids follow its catalogue, and "the larger id comes next" is a signal a
    model with id embeddings learns. The key changes with the seed, so seeds average over tie orders too."""
    return np.random.default_rng([TIE_ORDER_SEED, seed]).permutation(num_ratings)


TIE_ORDER_SEED = 7_919


def drop_last_ratings(interactions: Interactions, count: int, seed: int = 0) -> Interactions:
    """Each user's ratings but the last `count` by time (ties in a seeded random order): an earlier fold of the
    same leave-last-out protocol, for a validation with several held-out items per user."""
    if count <= 0:
        return interactions
    ties = tie_order(len(interactions), seed)
    order = np.lexsort((ties, interactions.timestamps, interactions.user_ids))
    users = interactions.user_ids[order]
    ends = np.r_[np.flatnonzero(users[1:] != users[:-1]), len(users) - 1]
    from_end = np.empty(len(users), dtype=np.int64)
    starts = np.r_[0, ends[:-1] + 1]
    for start, end in zip(starts, ends):
        from_end[start : end + 1] = np.arange(end - start, -1, -1)
    keep = np.zeros(len(users), dtype=bool)
    keep[order] = from_end >= count
    return interactions.subset(keep)


EVAL_SAMPLE_SEED = 20_250_101  # one fixed sample of evaluated users, whatever the training seed


def leave_last_out(
    users: npt.NDArray[np.int64],
    movies: npt.NDArray[np.int64],
    stars: npt.NDArray[np.float32],
    timestamps: npt.NDArray[np.int64],
    num_users: int,
    num_movies: int,
    max_users: int = 0,
    seed: int = 0,
) -> Split:
    """Each user's last rating by time is test, the one before validation; ratings given in the same second are
    ordered by `tie_order(seed)`, never by movie. Beyond `max_users` eligible users (> 0), a fixed random sample
    of them is held out and the others keep every rating in train: full ranking over 162k users each epoch
    would cost more than the training. Train comes out by user, then time, then the same tie order."""
    order = np.lexsort((tie_order(len(users), seed), timestamps, users))
    users, movies, stars, timestamps = users[order], movies[order], stars[order], timestamps[order]
    counts = np.bincount(users, minlength=num_users)
    ends = np.cumsum(counts)
    validation = np.full(num_users, -1, dtype=np.int64)
    test = np.full(num_users, -1, dtype=np.int64)
    keep = np.ones(len(users), dtype=bool)
    eligible = np.flatnonzero(counts >= 3)
    if 0 < max_users < len(eligible):
        eligible = np.sort(np.random.default_rng(EVAL_SAMPLE_SEED).choice(eligible, max_users, replace=False))
    test[eligible] = movies[ends[eligible] - 1]
    validation[eligible] = movies[ends[eligible] - 2]
    keep[ends[eligible] - 1] = False
    keep[ends[eligible] - 2] = False
    validation_stars = np.zeros(num_users, dtype=np.float32)
    validation_times = np.zeros(num_users, dtype=np.int64)
    validation_stars[eligible] = stars[ends[eligible] - 2]
    validation_times[eligible] = timestamps[ends[eligible] - 2]
    return Split(
        num_users,
        num_movies,
        (users[keep], movies[keep], stars[keep], timestamps[keep]),
        validation,
        test,
        validation_stars,
        validation_times,
    )


def top_k(scores: npt.NDArray[np.floating[Any]], exclude: sparse.csr_matrix, k: int) -> npt.NDArray[np.int64]:
    """Best k movies per row, never one in `exclude`; (num_rows, k), best first."""
    k = min(k, scores.shape[1])
    scores = scores.copy()
    rows, cols = exclude.nonzero()
    scores[rows, cols] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def hit_rate_at_k(ranked: npt.NDArray[np.int64], held_out: npt.NDArray[np.int64], k: int = K) -> float:
    """Share of users whose held-out movie is in their top k."""
    return float((ranked[:, :k] == held_out[:, None]).any(axis=1).mean())


def ndcg_at_k(ranked: npt.NDArray[np.int64], held_out: npt.NDArray[np.int64], k: int = K) -> float:
    """With one held-out movie, the ideal DCG is 1, so NDCG = 1 / log2(rank + 1) on a hit."""
    hits = ranked[:, :k] == held_out[:, None]
    gains = hits / np.log2(np.arange(2, hits.shape[1] + 2))[None, :]
    return float(gains.sum(axis=1).mean())


def mrr_at_k(ranked: npt.NDArray[np.int64], held_out: npt.NDArray[np.int64], k: int = K) -> float:
    hits = ranked[:, :k] == held_out[:, None]
    return float((hits / np.arange(1, hits.shape[1] + 1)[None, :]).sum(axis=1).mean())


def recall_at_k(ranked: npt.NDArray[np.int64], held_out: npt.NDArray[np.int64], k: int = RECALL_K) -> float:
    """One held-out movie per user: recall@k is the share of users who got it back in k."""
    return hit_rate_at_k(ranked, held_out, k)


def coverage_at_k(ranked: npt.NDArray[np.int64], num_movies: int, k: int = K) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    return float(len(np.unique(ranked[:, :k])) / num_movies)


# (history, user rows, whether the history holds the validation ratings) -> scores (len(users), num_movies)
Scorer = Callable[[sparse.csr_matrix, npt.NDArray[np.int64], bool], npt.NDArray[np.floating[Any]]]
# (user rows, whether the history holds the validation ratings, k) -> each user's top k as served at k
# (len(users), k): a served list at k is not always the prefix of the one at a larger k (the per-source cap)
Ranker = Callable[[npt.NDArray[np.int64], bool, int], npt.NDArray[np.int64]]


def ranked_lists(
    split: Split, model: Scorer | Ranker, on: str, batch_size: int = 1024, is_ranker: bool = False, k: int = K
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(users evaluated, their top k, as a ranker serves k) on 'validation' (history = train) or 'test'
    (train + validation)."""
    held_out = split.validation if on == "validation" else split.test
    users = np.flatnonzero(held_out >= 0)
    chunks = np.array_split(users, max(1, int(np.ceil(len(users) / batch_size))))
    if not len(users):
        return users, np.zeros((0, k), dtype=np.int64)
    if is_ranker:
        ranker = cast(Ranker, model)
        return users, np.concatenate([ranker(chunk, on == "test", k)[:, :k] for chunk in chunks])
    scorer = cast(Scorer, model)
    history = split.history_matrix(include_validation=on == "test")
    return users, np.concatenate([top_k(scorer(history, chunk, on == "test"), history[chunk], k) for chunk in chunks])


def metrics_of(
    ranked: npt.NDArray[np.int64],
    truth: npt.NDArray[np.int64],
    num_movies: int,
    ranked_at_20: npt.NDArray[np.int64] | None = None,
) -> dict[str, float]:
    """@10 metrics from the top 10 as served at 10; recall@20 from the list served at 20 (by default the
    same list, which then must be at least 20 long: a scorer's top k are prefixes of each other)."""
    at_20 = ranked if ranked_at_20 is None else ranked_at_20
    return {
        "hr@10": hit_rate_at_k(ranked, truth),
        "ndcg@10": ndcg_at_k(ranked, truth),
        "mrr@10": mrr_at_k(ranked, truth),
        "recall@20": recall_at_k(at_20, truth),
        "coverage@10": coverage_at_k(ranked, num_movies),
        "num_users": int(len(truth)),
    }


def list_diversity(ranked: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], batch_size: int = 4096) -> float:
    """Mean over users of their list's intra-list diversity: the mean cosine distance (1 - cos) between every
    two movies on it (-1 padding left out), over the model's vectors: recommender.ml.diversity's measure for a
    whole set of lists at once."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)
    total, counted = 0.0, 0
    for start in range(0, len(ranked), batch_size):
        rows = ranked[start : start + batch_size]
        present = rows >= 0
        chosen = unit[np.where(present, rows, 0)] * present[..., None]  # (users, k, dim), padding zeroed
        cosine = np.einsum("ukd,uld->ukl", chosen, chosen)
        pairs = present.sum(axis=1) * (present.sum(axis=1) - 1)
        off_diagonal = cosine.sum(axis=(1, 2)) - np.einsum("ukk->u", cosine)
        has_pairs = pairs > 0
        total += float(np.sum(1.0 - off_diagonal[has_pairs] / pairs[has_pairs]))
        counted += int(np.count_nonzero(has_pairs))
    return total / counted if counted else 0.0


def evaluate(
    split: Split, model: Scorer | Ranker, on: str, batch_size: int = 1024, is_ranker: bool = False
) -> dict[str, float]:
    """Full-ranking metrics on 'validation' (history = train) or 'test' (history = train + validation), each
    at k from the list served at that k."""
    held_out = split.validation if on == "validation" else split.test
    if not is_ranker:
        users, ranked = ranked_lists(split, model, on, batch_size, k=RECALL_K)
        return metrics_of(ranked, held_out[users], split.num_movies)
    users, ranked = ranked_lists(split, model, on, batch_size, is_ranker, k=K)
    _, at_20 = ranked_lists(split, model, on, batch_size, is_ranker, k=RECALL_K)
    return metrics_of(ranked, held_out[users], split.num_movies, at_20)


def per_user_gains(
    ranked: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], k: int = K
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(hit@k, NDCG@k) of each user, for paired comparisons."""
    hits = ranked[:, :k] == truth[:, None]
    return hits.any(axis=1).astype(np.float64), (hits / np.log2(np.arange(2, k + 2))[None, :]).sum(axis=1)


def seed_and_user_bootstrap(
    per_seed: list[npt.NDArray[np.float64]], num_samples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of per-user differences (ours - theirs) over seeds, each seed its own split and training, with a 95%
    interval from a two-level bootstrap: seeds drawn with replacement, then users within each drawn seed. The
    interval holds seed-to-seed variance as well as the users' (one seed's user bootstrap alone is too narrow)."""
    generator = np.random.default_rng(seed)
    means = np.empty(num_samples)
    for sample in range(num_samples):
        drawn = generator.integers(len(per_seed), size=len(per_seed))
        means[sample] = np.mean(
            [per_seed[d][generator.integers(len(per_seed[d]), size=len(per_seed[d]))].mean() for d in drawn]
        )
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "difference": float(np.mean([d.mean() for d in per_seed])),
        "low": float(low),
        "high": float(high),
        "p_better": float(np.mean(means > 0)),
        "num_seeds": len(per_seed),
    }


def paired_bootstrap(
    ours: npt.ArrayLike, theirs: npt.ArrayLike, num_samples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean difference ours - theirs over users, its 95% interval, and the share of resamples where ours wins."""
    generator = np.random.default_rng(seed)
    difference = np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)
    picks = generator.integers(len(difference), size=(num_samples, len(difference)))
    means = difference[picks].mean(axis=1)
    return {
        "difference": float(difference.mean()),
        "low": float(np.percentile(means, 2.5)),
        "high": float(np.percentile(means, 97.5)),
        "p_better": float((means > 0).mean()),
    }


def split_histories(split: Split, include_validation: bool, only_held_out: bool = False) -> Histories:
    """Every user's histories; with `only_held_out`, the users without held-out ratings have empty ones."""
    return Histories.of(*split.ratings(include_validation, only_held_out), split.num_users)


def subset_histories(histories: Histories, users: npt.NDArray[np.int64]) -> Histories:
    lengths = histories.starts[users + 1] - histories.starts[users]
    take = (
        np.concatenate([np.arange(histories.starts[u], histories.starts[u + 1]) for u in users])
        if len(users)
        else np.zeros(0, dtype=np.int64)
    )
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Histories(starts, histories.movies[take], histories.stars[take], histories.timestamps[take])


def _scope(split: Split, users: npt.NDArray[np.int64], with_validation: bool) -> tuple[bool, bool]:
    """`split_histories` arguments that cover `users`: the held-out users' alone when every one asked is held
    out (evaluation), else every user's."""
    return with_validation, bool(np.all(split.validation[users] >= 0))


def embedding_ranker(
    split: Split,
    embeddings: npt.NDArray[np.float32] | None,
    config: ScoringConfig,
    neighbors: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None,
) -> Ranker:
    """The serving rule (`scoring.select_history` then `scoring.rank`) on neighbour lists from the vectors.

    `neighbors` may hold precomputed best-first top lists at least `neighbors_per_item` long (the embeddings are
    then not read, and may be None)."""
    if neighbors is None:
        if embeddings is None:
            raise TypeError("embedding_ranker needs the embeddings or their neighbour lists")
        neighbors = top_neighbors(embeddings, config.neighbors_per_item)
    indices, scores = neighbors
    histories: dict[tuple[bool, bool], Histories] = {}  # built when first asked

    def ranker(users: npt.NDArray[np.int64], with_validation: bool, k: int = RECALL_K) -> npt.NDArray[np.int64]:
        scope = _scope(split, users, with_validation)
        if scope not in histories:
            histories[scope] = split_histories(split, *scope)
        chunk = subset_histories(histories[scope], users)
        evidence = select_history(chunk, config)
        return rank(evidence, indices[evidence.movies], scores[evidence.movies], chunk, config, k).movies

    return ranker


def source_shares(
    split: Split,
    embeddings: npt.NDArray[np.float32],
    config: ScoringConfig,
    on: str = "test",
    min_liked: int = 5,
    k: int = RECALL_K,
) -> dict[str, float]:
    """For users with at least `min_liked` liked movies: the share of their top k whose main contributor
    is their most frequent one (mean, and share of users above one half)."""
    indices, scores = top_neighbors(embeddings, config.neighbors_per_item)
    histories = split_histories(split, on == "test")
    liked = np.bincount(histories.user_of()[histories.stars >= LIKED_STARS], minlength=split.num_users)
    users = np.flatnonzero(liked >= min_liked)
    chunk = subset_histories(histories, users)
    evidence = select_history(chunk, config)
    sources = rank(evidence, indices[evidence.movies], scores[evidence.movies], chunk, config, k).sources
    top = np.array([np.bincount(row[row >= 0]).max(initial=0) for row in sources]) / k
    return {
        "mean_top_source_share": float(top.mean()) if len(top) else 0.0,
        "users_over_half": float((top > 0.5).mean()) if len(top) else 0.0,
        "num_users": int(len(users)),
    }


# Baselines -----------------------------------------------------------------------------------------


def most_rated_scorer(split: Split) -> Scorer:
    """Every user gets the movies with the most train ratings (what leave-last-out calls popularity)."""
    counts = np.bincount(split.train[1], minlength=split.num_movies).astype(np.float32)
    return lambda history, users, with_validation: np.tile(counts, (len(users), 1))


def item_knn_scorer(
    split: Split, num_neighbors: int = 100, shrink: float = 10.0, block_rows: int | None = None
) -> Scorer:
    """Cosine similarity between movies' rater sets, top neighbours kept per movie (recommender.ml.corating).
    Kept per (num_neighbors, shrink) for the last split, so ItemKNN+recency's grid reuses ItemKNN's."""
    if not _knn_cache or _knn_cache[0]() is not split:
        _knn_cache[:] = [weakref.ref(split), {}]
    kept: dict[tuple[int, float, int | None], sparse.csr_matrix] = _knn_cache[1]
    key = (num_neighbors, shrink, block_rows)
    if key not in kept:
        history = split.history_matrix(include_validation=False)
        kept[key] = co_rated(history, num_neighbors, shrink, block_rows).as_matrix()
    matrix = kept[key]
    return lambda history, users, with_validation: (history[users] @ matrix).toarray()


_knn_cache: list[Any] = []  # [weak reference to the split, {(num_neighbors, shrink, block_rows): similarity}]


EASE_MAX_MOVIES = 15_000  # beyond, EASE learns the most-rated 15k in float32 (0.9 GB) and ranks the rest last
EASE_CACHE_BYTES = 4 * 1024**3  # weights kept for one split, newest first, so EASE+recency reuses EASE's grid
_ease_cache: list[Any] = []  # [weak reference to the split, {(l2, max_movies): (columns, B)}]


def ease_weights(
    split: Split, l2: float, max_movies: int = EASE_MAX_MOVIES
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """EASE (Steck 2019): B = I - P diagMat(1 / diag(P)) with P = (X'X + l2 I)^-1, diagonal zero, over the
    `columns` it covers: every movie, or the `max_movies` most rated in train when there are more (float32 then).

    Kept per l2 for the last split (up to EASE_CACHE_BYTES), so a grid over history rules inverts once per l2
    and EASE+recency's grid reuses plain EASE's inversions."""
    if not _ease_cache or _ease_cache[0]() is not split:
        _ease_cache[:] = [weakref.ref(split), {}]
    kept: dict[tuple[float, int], tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = _ease_cache[1]
    if (l2, max_movies) in kept:
        return kept[(l2, max_movies)]
    x = split.history_matrix(include_validation=False)
    dtype: type[np.floating[Any]]
    if split.num_movies > max_movies:
        counts = np.asarray(x.sum(axis=0)).ravel()
        columns = np.sort(np.argsort(-counts, kind="stable")[:max_movies])
        dtype = np.float32
    else:
        columns, dtype = np.arange(split.num_movies), np.float64
    gram = _gram(x[:, columns].tocsc(), dtype)
    gram[np.diag_indices_from(gram)] += l2
    # In place: the Gram matrix becomes P, then B. At 15k movies in float32 that is 0.9 GB in all, where the
    # sparse product made whole (nearly dense among the most rated), a float64 copy and inv's copies were 5 GB.
    p = _symmetric_inverse(gram)
    p /= -p.diagonal().copy()
    b = p.astype(np.float32, copy=False)
    np.fill_diagonal(b, 0.0)
    while kept and sum(w.nbytes for _, w in kept.values()) + b.nbytes > EASE_CACHE_BYTES:
        del kept[next(iter(kept))]  # the oldest first
    kept[(l2, max_movies)] = (columns, b)
    return columns, b


def _symmetric_inverse(matrix: npt.NDArray[np.floating[Any]], block: int = 1024) -> npt.NDArray[np.floating[Any]]:
    """The inverse of a symmetric positive definite matrix, in place: Cholesky (LAPACK potrf, potri) takes
    half the time of the general inverse's LU at ml-latest-small's 9.7k movies, and the same memory."""
    potrf, potri = linalg.lapack.get_lapack_funcs(("potrf", "potri"), (matrix,))
    # LAPACK works on Fortran order; the transpose of a C-ordered symmetric matrix is that matrix, without a copy.
    factor, info = potrf(matrix.T, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        raise linalg.LinAlgError(f"EASE's Gram matrix is not positive definite (potrf {info})")
    inverse: npt.NDArray[np.floating[Any]]
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise linalg.LinAlgError(f"EASE's Gram matrix is singular (potri {info})")
    for start in range(0, len(inverse), block):  # potri fills the upper triangle: mirror it, a block at a time
        end = start + block
        inverse[start:end, :start] = inverse[:start, start:end].T
        diagonal = inverse[start:end, start:end]
        diagonal[:] = np.triu(diagonal) + np.triu(diagonal, 1).T
    return inverse


def _gram(sub: sparse.csc_matrix, dtype: type[np.floating[Any]], block: int = 1024) -> npt.NDArray[np.floating[Any]]:
    """X'X as a dense array of `dtype`, a block of columns at a time (counts, so float32 holds them exactly)."""
    n = sub.shape[1]
    gram = np.empty((n, n), dtype=dtype)
    transposed = sub.T.tocsr()
    for start in range(0, n, block):
        gram[:, start : start + block] = (transposed @ sub[:, start : start + block]).toarray()
    return gram


def ease_scorer(split: Split, l2: float = 200.0, max_movies: int = EASE_MAX_MOVIES) -> Scorer:
    columns, b = ease_weights(split, l2, max_movies)
    if len(columns) == split.num_movies:
        return lambda history, users, with_validation: np.asarray(history[users] @ b)

    def scorer(
        history: sparse.csr_matrix, users: npt.NDArray[np.int64], with_validation: bool
    ) -> npt.NDArray[np.float32]:
        scores = np.full((len(users), split.num_movies), -np.inf, dtype=np.float32)
        scores[:, columns] = np.asarray(history[users][:, columns] @ b)
        return scores

    return scorer


def ease_recency_scorer(
    split: Split, l2: float = 200.0, recency_half_life: float = 20.0, history_limit: int = 20, min_stars: float = 0.0
) -> Scorer:
    """EASE's item weights applied to the product's weighted recent history instead of the whole binary one."""
    return on_recent_history(split, ease_scorer(split, l2), recency_half_life, history_limit, min_stars)


def item_knn_recency_scorer(
    split: Split,
    num_neighbors: int = 100,
    shrink: float = 10.0,
    recency_half_life: float = 20.0,
    history_limit: int = 20,
    min_stars: float = 0.0,
) -> Scorer:
    """ItemKNN's similarities summed over the product's weighted recent history, as EASE+recency does."""
    base = item_knn_scorer(split, num_neighbors, shrink)
    return on_recent_history(split, base, recency_half_life, history_limit, min_stars)


def on_recent_history(
    split: Split, base: Scorer, recency_half_life: float, history_limit: int, min_stars: float
) -> Scorer:
    """A linear scorer fed the serving rule's history (`select_history`: newest first, recency and stars
    weighted) instead of the whole binary history."""
    config = ScoringConfig(history_limit=history_limit, recency_half_life=recency_half_life, min_stars=min_stars)
    weights: dict[tuple[bool, bool], sparse.csr_matrix] = {}  # built when first asked

    def scorer(
        history: sparse.csr_matrix, users: npt.NDArray[np.int64], with_validation: bool
    ) -> npt.NDArray[np.floating[Any]]:
        scope = _scope(split, users, with_validation)
        if scope not in weights:
            chosen = select_history(split_histories(split, *scope), config)
            weights[scope] = history_weight_matrix(chosen, split.num_users, split.num_movies)
        return base(weights[scope], users, with_validation)

    return scorer


DAY_S = 86_400


def recent_popularity_scorer(split: Split, days: float = 30.0) -> Scorer:
    """The movies most rated in the `days` before each user's last known rating (never the held-out one's time,
    which would leak when it was made); overall counts break ties."""
    users, movies, times = split.train[0], split.train[1], split.train[3]
    order = np.argsort(times, kind="stable")
    sorted_times, sorted_movies = times[order], movies[order]
    overall = np.bincount(movies, minlength=split.num_movies).astype(np.float64)
    last_train = np.full(split.num_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_train, users, times)

    def scorer(
        history: sparse.csr_matrix, chunk: npt.NDArray[np.int64], with_validation: bool
    ) -> npt.NDArray[np.float64]:
        now = np.maximum(last_train[chunk], split.validation_times[chunk]) if with_validation else last_train[chunk]
        low = np.searchsorted(sorted_times, now - days * DAY_S, side="left")
        high = np.searchsorted(sorted_times, now, side="right")
        scores = np.empty((len(chunk), split.num_movies))
        for row, (start, end) in enumerate(zip(low, high)):
            scores[row] = np.bincount(sorted_movies[start:end], minlength=split.num_movies) + overall * 1e-9
        return scores

    return scorer
