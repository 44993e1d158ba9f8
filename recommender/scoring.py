"""The rule that turns a user's rating history and item neighbours into recommendations.

Serving (Milvus search per liked movie) and evaluation (sparse matrices) both apply this rule, so the
numbers evaluation reports are the numbers users get."""
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class ScoringConfig:
    neighbors_per_item: int = 50   # top-N similar movies searched for each history movie
    history_limit: int = 20        # most recent well-rated movies that speak for the user (one search each)
    recency_half_life: float = 20.0  # in ratings: the 20th most recent counts half as much as the latest
    star_power: float = 1.0        # weight *= (stars / 5) ** star_power
    min_stars: float = 3.5         # "rated well"; when nothing qualifies, all ratings are used


def history_weights(stars: np.ndarray, timestamps: np.ndarray, config: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
    """(positions into the history, weights) of the ratings that speak for the user, newest first."""
    order = np.lexsort((np.arange(len(timestamps)), timestamps))[::-1]
    liked = order[stars[order] >= config.min_stars]
    chosen = (liked if len(liked) else order)[: config.history_limit]
    recency = 0.5 ** (np.arange(len(chosen)) / config.recency_half_life) if config.recency_half_life else np.ones(len(chosen))
    weights = (stars[chosen] / 5.0) ** config.star_power * recency
    return chosen, weights.astype(np.float32)


def top_neighbors(embeddings: np.ndarray, k: int, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of every movie among the others, best first: (indices, scores), each (num_movies, k)."""
    num = len(embeddings)
    k = min(k, num - 1)
    # A batch's similarity block stays near 128 MB however large the catalogue (2048 rows at most).
    batch_size = batch_size or max(1, min(2048, 2**25 // num))
    indices = np.empty((num, k), dtype=np.int64)
    scores = np.empty((num, k), dtype=np.float32)
    for start in range(0, num, batch_size):
        sims = embeddings[start:start + batch_size] @ embeddings.T  # (batch, num_movies)
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")
        indices[start:start + len(rows)] = np.take_along_axis(part, order, axis=1)
        scores[start:start + len(rows)] = np.take_along_axis(best, order, axis=1)
    return indices, scores


def neighbor_matrix(indices: np.ndarray, scores: np.ndarray, num_movies: int) -> sparse.csr_matrix:
    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    return sparse.csr_matrix((scores.ravel(), (rows, indices.ravel())), shape=(num_movies, num_movies))


def fuse(history: np.ndarray, weights: np.ndarray, neighbor_ids: np.ndarray,
         neighbor_scores: np.ndarray) -> dict[int, tuple[float, int]]:
    """movie -> (fused score, the history movie that contributed most), from per-history top-N lists."""
    fused: dict[int, list] = {}
    for source, weight, ids, sims in zip(history, weights, neighbor_ids, neighbor_scores):
        for movie, sim in zip(ids.tolist(), sims.tolist()):
            part = float(weight) * sim
            entry = fused.setdefault(movie, [0.0, int(source), -np.inf])
            entry[0] += part
            if part > entry[2]:
                entry[1], entry[2] = int(source), part
    return {movie: (score, source) for movie, (score, source, _) in fused.items()}
