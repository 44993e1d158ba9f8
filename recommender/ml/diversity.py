"""Maximal marginal relevance re-ranking of a candidate list, and the intra-list diversity it is judged by."""

import numpy as np
import numpy.typing as npt


def _unit_rows(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rows scaled to length 1; a zero row stays zero, so its cosine with anything is 0."""
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = rows / np.where(norms > 0, norms, 1.0)
    return unit


def mmr(scores: npt.ArrayLike, vectors: npt.NDArray[np.float32], k: int, weight: float) -> npt.NDArray[np.int64]:
    """Greedy maximal marginal relevance: the order of at most k candidates, as positions into `scores`.

    scores: (n,) relevance, higher better; vectors: (n, d) the candidates' vectors, compared by cosine.
    Relevance is min-max normalised over the candidates (best 1, worst 0; all equal: all 0), so a weight means
    the same for any score scale (though not for any pool: the weakest candidate passed sets the 0). Each step picks the unchosen candidate with the largest
    (1 - weight) * relevance - weight * (its largest cosine to those already chosen); the first pick is the
    most relevant. weight 0 returns the top k by score, and any tie, at any weight, goes to the candidate that
    comes first in (stable) score order, so scores monotone in a served order reproduce it at weight 0."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    relevance = np.asarray(scores, dtype=np.float64).ravel()
    if len(relevance) != len(vectors):
        raise ValueError(f"{len(relevance)} scores for {len(vectors)} vectors")
    by_score = np.argsort(-relevance, kind="stable")
    k = max(0, min(k, len(relevance)))
    if weight == 0.0 or k <= 1:
        return by_score[:k].astype(np.int64)
    # In score order, so that argmax's first-index tie rule is the score order's.
    relevance, unit = relevance[by_score], _unit_rows(np.asarray(vectors)[by_score])
    spread = relevance[0] - relevance[-1]
    relevance = (relevance - relevance[-1]) / spread if spread > 0 else np.zeros_like(relevance)
    similarity = unit @ unit.T  # (n, n) cosines
    chosen = np.zeros(k, dtype=np.int64)  # chosen[0] = 0: the most relevant
    closest = similarity[0].copy()  # (n,) each candidate's largest cosine to the chosen so far
    value = (1.0 - weight) * relevance
    value[0] = -np.inf  # a chosen candidate is never picked again
    for step in range(1, k):
        pick = int(np.argmax(value - weight * closest))
        chosen[step], value[pick] = pick, -np.inf
        np.maximum(closest, similarity[pick], out=closest)
    return by_score[chosen].astype(np.int64)


def intra_list_diversity(vectors: npt.ArrayLike) -> float:
    """Mean cosine distance (1 - cosine) over the list's pairs of (n, d) vectors; 0 for fewer than 2.
    A zero vector is at distance 1 from every other."""
    unit = _unit_rows(vectors)
    n = len(unit)
    if n < 2:
        return 0.0
    similarity = unit @ unit.T  # (n, n)
    off_diagonal = similarity.sum() - np.trace(similarity)
    return float(1.0 - off_diagonal / (n * (n - 1)))
