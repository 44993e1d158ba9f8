"""The one rule that turns rating histories and movie neighbour lists into ranked recommendations.

Serving (neighbour lists read from Milvus) and evaluation (lists from the vectors) both call
`select_history` and `rank`, vectorised over many users, so the numbers evaluation reports are the
picks users get, in the same order."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.ml.data import Histories

LIKED_STARS = 3.5  # a movie rated this well may be named as "Because you liked ..."; below, never
LEGACY = {"sharpness": 0.0}  # what runs stored before a setting existed were scored with


@dataclass(frozen=True)
class ScoringConfig:
    neighbors_per_item: int = 50  # top-N similar movies read for each history movie
    history_limit: int = 20  # most recent movies that speak for the user
    recency_half_life: float = 5.0  # in ratings: one 5 places back counts half as much as the latest
    star_power: float = 1.0  # weight *= (stars / 5) ** star_power
    min_stars: float = 0.0  # ratings below this are not evidence (0: all are); when none qualifies, all are
    # At most this many picks of a list may have one liked movie as main contributor (0: no cap). A count, not a
    # share of the list asked for, so a shorter list is always the beginning of a longer one: the page's first 10
    # are the top 10 the bench scores. 10 is half of the page's 20, as the share of 0.5 it replaces was there.
    max_per_source: int = 10
    # > 0: a neighbour counts exp((similarity - 1) / sharpness), not its similarity, so one movie very close to a
    # liked one outranks one loosely like many (bench/results/kernel.md: +0.013 validation HR@10, +0.010 NDCG@10)
    sharpness: float = 0.2

    @classmethod
    def stored(cls, values: dict[str, Any]) -> "ScoringConfig":
        """The rule a run was evaluated with, from its stored config: a setting added since keeps the value that
        run was scored under (LEGACY), not today's default, so an older live run is served as it was evaluated."""
        known = {key: value for key, value in values.items() if key in cls.__dataclass_fields__}
        return cls(**{**(LEGACY if values else {}), **known})


@dataclass(frozen=True)
class Evidence:
    """The history entries that speak for their users, newest first within a user."""

    users: npt.NDArray[np.int64]  # (num_chosen,) row in the Histories
    movies: npt.NDArray[np.int64]  # (num_chosen,) movie keys
    weights: npt.NDArray[np.float32]  # (num_chosen,)
    liked: npt.NDArray[np.bool_]  # (num_chosen,) stars >= LIKED_STARS, so it may be credited


@dataclass(frozen=True)
class Ranked:
    movies: npt.NDArray[np.int64]  # (num_users, k) movie keys, best first, -1 where fewer candidates
    scores: npt.NDArray[np.float32]  # (num_users, k) fused scores
    sources: npt.NDArray[np.int64]  # (num_users, k) the liked movie that contributed most, -1 when none was liked


def _cumcount(groups: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Position of each element within its run of equal (sorted) group values."""
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))


def _tied_rank(users: npt.NDArray[np.int64], times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Within each user's run (newest first), how many of the user's elements are strictly newer."""
    position = _cumcount(users)
    first_of_moment = np.r_[True, (users[1:] != users[:-1]) | (times[1:] != times[:-1])] if len(users) else []
    starts = np.flatnonzero(first_of_moment)
    return np.repeat(position[starts], np.diff(np.r_[starts, len(users)])) if len(users) else position


def select_history(histories: Histories, config: ScoringConfig) -> Evidence:
    """Newest first; well-rated ratings only unless a user has none; those of the `history_limit` newest
    moments; weight = (stars / 5) ** star_power * 0.5 ** (rank / half life), where rank counts the user's
    ratings strictly newer. Ratings of the same moment share a rank (and a weight), and a tie at the limit is
    kept whole: the data holds no order among them, and any order chosen (by movie key) would be a leak."""
    users = histories.user_of()
    order = np.lexsort((histories.movies, -histories.timestamps, users))
    users, movies, stars, times = (
        users[order],
        histories.movies[order],
        histories.stars[order],
        histories.timestamps[order],
    )
    good = stars >= config.min_stars
    has_good = np.bincount(users[good], minlength=histories.num_users) > 0
    eligible = good | ~has_good[users]
    users, movies, stars, times = users[eligible], movies[eligible], stars[eligible], times[eligible]
    rank = _tied_rank(users, times)
    keep = rank < config.history_limit
    users, movies, stars, rank = users[keep], movies[keep], stars[keep], rank[keep]
    recency = 0.5 ** (rank / config.recency_half_life) if config.recency_half_life else np.ones(len(rank))
    weights = ((stars / 5.0) ** config.star_power * recency).astype(np.float32)
    return Evidence(users, movies, weights, stars >= LIKED_STARS)


def rank(
    evidence: Evidence,
    neighbor_ids: npt.NDArray[np.int64],
    neighbor_scores: npt.NDArray[np.float32],
    histories: Histories,
    config: ScoringConfig,
    k: int,
) -> Ranked:
    """Fused top-k per user of `histories`.

    neighbor_ids/scores: (len(evidence.movies), >= n) each evidence movie's nearest movies, best first,
    -1 padded; only the first `neighbors_per_item` are read. A candidate's score is the sum over the
    evidence of weight * similarity (or of weight * exp((similarity - 1) / sharpness)); rated movies are never returned; ties go
    to the smaller movie key; a candidate's source is its largest contributor among liked movies; beyond
    `max_per_source` picks of one source, its further picks go after every other candidate (so they appear
    only when nothing else is left). The order does not depend on k: the top k is the beginning of the top k + 1."""
    n = config.neighbors_per_item
    ids, sims = neighbor_ids[:, :n], neighbor_scores[:, :n]
    width = ids.shape[1]
    users = np.repeat(evidence.users, width)
    if config.sharpness > 0:  # a kernel: a candidate very close to one history movie beats one near many
        sims = np.exp((sims.astype(np.float64) - 1.0) / config.sharpness)
    candidates, parts = ids.ravel(), (evidence.weights[:, None] * sims).ravel().astype(np.float64)
    sources, liked = np.repeat(evidence.movies, width), np.repeat(evidence.liked, width)
    span = int(max(candidates.max(initial=0), histories.movies.max(initial=0))) + 1
    keys = users.astype(np.int64) * span + candidates
    rated = histories.user_of().astype(np.int64) * span + histories.movies
    usable = (candidates >= 0) & ~np.isin(keys, rated)
    keys, parts, sources, liked = keys[usable], parts[usable], sources[usable], liked[usable]
    order = np.lexsort((sources, -parts, ~liked, keys))  # per candidate: liked first, then largest part
    keys, parts, sources, liked = keys[order], parts[order], sources[order], liked[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
    # Summed in sorted order, so the same inputs give bit-identical scores on every path.
    totals = np.add.reduceat(parts, starts) if len(starts) else np.zeros(0)
    group_keys = keys[starts]
    group_users, group_movies = group_keys // span, group_keys % span
    main = np.where(liked[starts], sources[starts], -1)
    return _top_per_user(group_users, group_movies, totals, main, histories.num_users, k, config.max_per_source)


def _top_per_user(
    users: npt.NDArray[np.int64],
    movies: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    sources: npt.NDArray[np.int64],
    num_users: int,
    k: int,
    cap: int,
) -> Ranked:
    order = np.lexsort((movies, -scores, users))
    users, movies, scores, sources = users[order], movies[order], scores[order], sources[order]
    cap = cap if cap > 0 else len(users) + 1
    # The n-th pick of a source is that source's n-th in score order, so a skip never changes another's count.
    by_source = np.lexsort((np.arange(len(users)), sources, users))
    nth = np.empty(len(users), dtype=np.int64)
    nth[by_source] = _cumcount(users[by_source] * (sources.max(initial=0) + 2) + sources[by_source] + 1)
    # Movies over a source's cap come after all the others, so a short history still fills its list.
    over = ~((sources < 0) | (nth < cap))
    order = np.lexsort((np.arange(len(users)), over, users))
    users, movies, scores, sources = users[order], movies[order], scores[order], sources[order]
    position = _cumcount(users)
    keep = position < k
    out = Ranked(
        np.full((num_users, k), -1, dtype=np.int64),
        np.zeros((num_users, k), dtype=np.float32),
        np.full((num_users, k), -1, dtype=np.int64),
    )
    out.movies[users[keep], position[keep]] = movies[keep]
    out.scores[users[keep], position[keep]] = scores[keep]
    out.sources[users[keep], position[keep]] = sources[keep]
    return out


def top_neighbors(
    embeddings: npt.NDArray[np.float32], k: int, batch_size: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact inner-product top-k of every movie among the others, best first (ties: smaller index):
    (indices, scores), each (num_movies, k)."""
    num = len(embeddings)
    k = min(k, num - 1)
    # A batch's similarity block stays near 128 MB however large the catalogue (2048 rows at most).
    batch_size = batch_size or max(1, min(2048, 2**25 // num))
    indices = np.empty((num, k), dtype=np.int64)
    scores = np.empty((num, k), dtype=np.float32)
    for start in range(0, num, batch_size):
        sims = embeddings[start : start + batch_size] @ embeddings.T  # (batch, num_movies)
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -best), axis=1)
        indices[start : start + len(rows)] = np.take_along_axis(part, order, axis=1)
        scores[start : start + len(rows)] = np.take_along_axis(best, order, axis=1)
    return indices, scores


def history_weight_matrix(evidence: Evidence, num_users: int, num_movies: int) -> sparse.csr_matrix:
    """Evidence as a users x movies matrix, for scoring a linear baseline with the product's history rule."""
    return sparse.csr_matrix((evidence.weights, (evidence.users, evidence.movies)), shape=(num_users, num_movies))


CREDIT_NEIGHBOURS = 20  # a liked movie explains a pick only if it is among the pick's own 20 nearest movies


def credited(
    picks: list[tuple[float, int, int]], liked: list[int], lists: dict[int, list[int]]
) -> list[tuple[float, int, int]]:
    """Each (score, pick, source) credited to the liked movie that comes first in the pick's own list of nearest
    movies (`lists`: the model's, or the co-rated ones), else to none (-1); a pick without a list keeps its
    source. What pages say ("Because you liked ...") and what bench/similar's explanation figures count."""
    liked_set = set(liked)
    found = []
    for score, pick, source in picks:
        if pick in lists and len(lists[pick]):
            source = next((m for m in lists[pick] if m in liked_set), -1)
        found.append((score, pick, source))
    return found
