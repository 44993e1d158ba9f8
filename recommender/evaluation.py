"""Leave-last-out split, full-ranking metrics, and the Popularity / ItemKNN / EASE baselines."""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from recommender.scoring import ScoringConfig, history_weights, neighbor_matrix, top_neighbors

K = 10
RECALL_K = 20


@dataclass(frozen=True)
class Split:
    """Per user by time: last rating -> test, second to last -> validation, the rest -> train.

    Users and movies are dense indices here (0..num_users-1, 0..num_movies-1)."""

    num_users: int
    num_movies: int
    train: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # users, movies, stars, timestamps
    validation: np.ndarray  # (num_users,) movie index, -1 where the user has < 3 ratings
    test: np.ndarray        # (num_users,) movie index, -1 likewise
    validation_stars: np.ndarray  # (num_users,) stars of the validation rating
    validation_times: np.ndarray  # (num_users,) its timestamp

    def history_matrix(self, include_validation: bool) -> sparse.csr_matrix:
        users, movies, _, _ = self.train
        if include_validation:
            has = self.validation >= 0
            users = np.concatenate([users, np.flatnonzero(has)])
            movies = np.concatenate([movies, self.validation[has]])
        data = np.ones(len(users), dtype=np.float32)
        matrix = sparse.csr_matrix((data, (users, movies)), shape=(self.num_users, self.num_movies))
        matrix.data[:] = 1.0  # a repeated pair counts once
        return matrix


def leave_last_out(users: np.ndarray, movies: np.ndarray, stars: np.ndarray, timestamps: np.ndarray,
                   num_users: int, num_movies: int) -> Split:
    order = np.lexsort((movies, timestamps, users))  # by user, then time; movie id breaks ties
    users, movies, stars, timestamps = users[order], movies[order], stars[order], timestamps[order]
    counts = np.bincount(users, minlength=num_users)
    ends = np.cumsum(counts)
    validation = np.full(num_users, -1, dtype=np.int64)
    test = np.full(num_users, -1, dtype=np.int64)
    keep = np.ones(len(users), dtype=bool)
    eligible = np.flatnonzero(counts >= 3)
    test[eligible] = movies[ends[eligible] - 1]
    validation[eligible] = movies[ends[eligible] - 2]
    keep[ends[eligible] - 1] = False
    keep[ends[eligible] - 2] = False
    validation_stars = np.zeros(num_users, dtype=np.float32)
    validation_times = np.zeros(num_users, dtype=np.int64)
    validation_stars[eligible] = stars[ends[eligible] - 2]
    validation_times[eligible] = timestamps[ends[eligible] - 2]
    return Split(num_users, num_movies, (users[keep], movies[keep], stars[keep], timestamps[keep]),
                 validation, test, validation_stars, validation_times)


def top_k(scores: np.ndarray, exclude: sparse.csr_matrix, k: int) -> np.ndarray:
    """Best k movies per row, never one in `exclude`; (num_rows, k), best first."""
    k = min(k, scores.shape[1])
    scores = scores.copy()
    rows, cols = exclude.nonzero()
    scores[rows, cols] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def hit_rate_at_k(ranked: np.ndarray, held_out: np.ndarray, k: int = K) -> float:
    """Share of users whose held-out movie is in their top k."""
    return float((ranked[:, :k] == held_out[:, None]).any(axis=1).mean())


def ndcg_at_k(ranked: np.ndarray, held_out: np.ndarray, k: int = K) -> float:
    """With one held-out movie, the ideal DCG is 1, so NDCG = 1 / log2(rank + 1) on a hit."""
    hits = ranked[:, :k] == held_out[:, None]
    gains = hits / np.log2(np.arange(2, hits.shape[1] + 2))[None, :]
    return float(gains.sum(axis=1).mean())


def mrr_at_k(ranked: np.ndarray, held_out: np.ndarray, k: int = K) -> float:
    hits = ranked[:, :k] == held_out[:, None]
    return float((hits / np.arange(1, hits.shape[1] + 1)[None, :]).sum(axis=1).mean())


def recall_at_k(ranked: np.ndarray, held_out: np.ndarray, k: int = RECALL_K) -> float:
    """One held-out movie per user: recall@k is the share of users who got it back in k."""
    return hit_rate_at_k(ranked, held_out, k)


def coverage_at_k(ranked: np.ndarray, num_movies: int, k: int = K) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    return float(len(np.unique(ranked[:, :k])) / num_movies)


# (history, user rows, whether the history holds the validation ratings) -> scores (len(users), num_movies)
Scorer = Callable[[sparse.csr_matrix, np.ndarray, bool], np.ndarray]


def evaluate(split: Split, scorer: Scorer, on: str, batch_size: int = 1024) -> dict[str, float]:
    """Full-ranking metrics on 'validation' (history = train) or 'test' (history = train + validation)."""
    held_out = split.validation if on == "validation" else split.test
    history = split.history_matrix(include_validation=on == "test")
    users = np.flatnonzero(held_out >= 0)
    ranked = np.concatenate([
        top_k(scorer(history, chunk, on == "test"), history[chunk], RECALL_K)
        for chunk in np.array_split(users, max(1, int(np.ceil(len(users) / batch_size))))
    ]) if len(users) else np.zeros((0, RECALL_K), dtype=np.int64)
    truth = held_out[users]
    return {"hr@10": hit_rate_at_k(ranked, truth), "ndcg@10": ndcg_at_k(ranked, truth),
            "mrr@10": mrr_at_k(ranked, truth), "recall@20": recall_at_k(ranked, truth),
            "coverage@10": coverage_at_k(ranked, split.num_movies), "num_users": int(len(users))}


# Baselines -----------------------------------------------------------------------------------------

def popularity_scorer(split: Split) -> Scorer:
    counts = np.bincount(split.train[1], minlength=split.num_movies).astype(np.float32)
    return lambda history, users, with_validation: np.tile(counts, (len(users), 1))


def item_knn_scorer(split: Split, num_neighbors: int = 100, shrink: float = 10.0) -> Scorer:
    """Cosine similarity between movies' rater sets, top neighbours kept per movie."""
    x = split.history_matrix(include_validation=False)
    co = (x.T @ x).toarray().astype(np.float32)  # (num_movies, num_movies)
    norms = np.sqrt(np.diag(co))
    sims = co / (np.outer(norms, norms) + shrink + 1e-9)
    np.fill_diagonal(sims, 0.0)
    if num_neighbors < split.num_movies:
        cut = np.argpartition(-sims, num_neighbors - 1, axis=1)[:, num_neighbors:]
        np.put_along_axis(sims, cut, 0.0, axis=1)
    similarity = sparse.csr_matrix(sims)
    return lambda history, users, with_validation: (history[users] @ similarity).toarray()


def ease_scorer(split: Split, l2: float = 200.0) -> Scorer:
    """EASE (Steck 2019): B = I - P diagMat(1 / diag(P)) with P = (X'X + l2 I)^-1, diagonal zero."""
    x = split.history_matrix(include_validation=False)
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = (p / -np.diag(p)).astype(np.float32)
    np.fill_diagonal(b, 0.0)
    return lambda history, users, with_validation: np.asarray(history[users] @ b)


def embedding_scorer(split: Split, embeddings: np.ndarray, config: ScoringConfig,
                     neighbors: tuple[np.ndarray, np.ndarray] | None = None) -> Scorer:
    """The serving rule: weighted recent well-rated history, fused top-N neighbour similarities.

    `neighbors` may hold precomputed best-first top lists at least `neighbors_per_item` long."""
    indices, scores = neighbors or top_neighbors(embeddings, config.neighbors_per_item)
    n = config.neighbors_per_item
    neighbors = neighbor_matrix(indices[:, :n], scores[:, :n], split.num_movies)
    weights = {False: _history_weight_matrix(split, config, False), True: _history_weight_matrix(split, config, True)}

    return lambda history, users, with_validation: (weights[with_validation][users] @ neighbors).toarray()


def _history_weight_matrix(split: Split, config: ScoringConfig, include_validation: bool) -> sparse.csr_matrix:
    users, movies, stars, times = split.train
    if include_validation:
        has = split.validation >= 0
        users = np.concatenate([users, np.flatnonzero(has)])
        movies = np.concatenate([movies, split.validation[has]])
        stars = np.concatenate([stars, split.validation_stars[has]])
        times = np.concatenate([times, split.validation_times[has]])
    order = np.argsort(users, kind="stable")
    users, movies, stars, times = users[order], movies[order], stars[order], times[order]
    bounds = np.searchsorted(users, np.arange(split.num_users + 1))
    rows, cols, vals = [], [], []
    for user in range(split.num_users):
        lo, hi = bounds[user], bounds[user + 1]
        if lo == hi:
            continue
        chosen, weight = history_weights(stars[lo:hi], times[lo:hi], config)
        rows.append(np.full(len(chosen), user))
        cols.append(movies[lo:hi][chosen])
        vals.append(weight)
    if not rows:
        return sparse.csr_matrix((split.num_users, split.num_movies), dtype=np.float32)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(split.num_users, split.num_movies))
