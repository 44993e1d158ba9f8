"""Movies rated by the same people: each movie's nearest movies by the cosine of their rater sets.

What the catalogue shows as "similar movies" before any model is live (computed at import, seconds on
ml-latest-small), the ItemKNN baseline's item-item weights, and one half of the served similar list's blend."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.ml.scoring import ScoringConfig

BLOCK_CELLS = 2**25  # a block's dense similarity rows stay near 128 MB however large the catalogue
STORED_PER_MOVIE = 20  # what the catalogue keeps per movie (movies.CoRatedMovie): all personal picks read
SHRINK = 10.0
# The serving rule over co-rated lists when no model is live (recommender.serving), chosen on ml-100k validation;
# bench/quality scores exactly this ("co_rated_served"). Item-kNN lists are short and rarely shared, so fewer
# rated movies back speak for the user than with PinSage's vectors.
SERVED_SCORING = ScoringConfig(
    neighbors_per_item=STORED_PER_MOVIE, recency_half_life=2.0, sharpness=0.2, max_per_source=10
)
# A movie page's "More like this" with a model live: PinSage's inner product plus this much of the co-rated
# cosine (0 off its stored list). Either alone missed the next rating more often than the blend (bench/similar).
SIMILAR_CO_RATED_WEIGHT = 0.5


def blended_similarity(
    pinsage: npt.NDArray[np.floating[Any]], co_rated_cosine: npt.NDArray[np.floating[Any]]
) -> npt.NDArray[np.floating[Any]]:
    """What "More like this" ranks by: one formula for the page (serving) and bench/similar."""
    return pinsage + SIMILAR_CO_RATED_WEIGHT * co_rated_cosine


@dataclass(frozen=True)
class CoRated:
    """Each movie's nearest movies, best first: (num_movies, k) indices, -1 padded where fewer share a rater."""

    indices: npt.NDArray[np.int64]  # (num_movies, k)
    scores: npt.NDArray[np.float32]  # (num_movies, k), 0 where padded

    def as_matrix(self) -> sparse.csr_matrix:
        """movies x movies similarity, the padding left out."""
        num, k = self.indices.shape
        rows = np.repeat(np.arange(num), k)
        kept = self.indices.ravel() >= 0
        return sparse.csr_matrix(
            (self.scores.ravel()[kept], (rows[kept], self.indices.ravel()[kept])), shape=(num, num)
        )


def rater_matrix(
    users: npt.NDArray[np.int64], movies: npt.NDArray[np.int64], num_users: int, num_movies: int
) -> sparse.csr_matrix:
    """users x movies, 1 where the user rated the movie (a repeated pair counts once)."""
    data = np.ones(len(users), dtype=np.float32)
    matrix = sparse.csr_matrix((data, (users, movies)), shape=(num_users, num_movies))
    matrix.data[:] = 1.0
    return matrix


def co_rated(raters: sparse.csr_matrix, k: int, shrink: float = SHRINK, block_rows: int | None = None) -> CoRated:
    """Cosine between movies' rater sets, divided by (|a| |b|)^0.5 + shrink so a pair seen by two people does
    not outrank one seen by two hundred; the top k of each movie (ties: the smaller index), a movie never its
    own neighbour. A block of movies at a time, so 62k movies never need a dense movies x movies matrix."""
    num = raters.shape[1]
    k = max(0, min(k, num - 1))
    indices = np.full((num, k), -1, dtype=np.int64)
    scores = np.zeros((num, k), dtype=np.float32)
    if k == 0:
        return CoRated(indices, scores)
    by_movie = raters.T.tocsr()
    norms = np.sqrt(np.diff(by_movie.indptr)).astype(np.float32)  # binary: a movie's row length is its count
    block = block_rows or max(1, min(num, BLOCK_CELLS // num))
    for start in range(0, num, block):
        co = (by_movie[start : start + block] @ raters).toarray()  # (block, num_movies) shared raters
        sims = co / (norms[start : start + block, None] * norms[None, :] + shrink + 1e-9)
        rows = np.arange(len(sims))
        sims[rows, rows + start] = 0.0
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -best), axis=1)
        top, best = np.take_along_axis(top, order, axis=1), np.take_along_axis(best, order, axis=1)
        indices[start : start + len(sims)] = np.where(best > 0, top, -1)
        scores[start : start + len(sims)] = np.where(best > 0, best, 0.0)
    return CoRated(indices, scores)
