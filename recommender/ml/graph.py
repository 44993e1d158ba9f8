"""Ratings -> user–movie heterograph; the only place that maps movie_id <-> movie_index."""

from dataclasses import dataclass

import dgl
import numpy as np
import numpy.typing as npt
import torch

from recommender.ml.config import EdgeWeighting
from recommender.ml.data import Interactions

USER = "user"
MOVIE = "movie"
RATED = "rated"  # user -> movie
RATED_BY = "rated-by"  # movie -> user
WEIGHT = "weight"


@dataclass(frozen=True)
class InteractionGraph:
    graph: dgl.DGLHeteroGraph
    movie_ids: npt.NDArray[np.int64]  # movie_ids[movie_index] == Movie.id
    user_ids: npt.NDArray[np.int64]  # user_ids[user_index] == User.id

    @property
    def num_movies(self) -> int:
        return len(self.movie_ids)

    def movie_indices(self, movie_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Graph indices of the given Movie ids; -1 for a movie the graph does not know."""
        return _positions(self.movie_ids, np.asarray(movie_ids, dtype=np.int64))

    def user_indices(self, user_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Graph indices of the given User ids; -1 for a user with no edges."""
        return _positions(self.user_ids, np.asarray(user_ids, dtype=np.int64))


def _positions(sorted_ids: npt.NDArray[np.int64], query: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if len(sorted_ids) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    position = np.clip(np.searchsorted(sorted_ids, query), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[position] == query, position, -1)


def build_interaction_graph(
    interactions: Interactions, all_movie_ids: npt.ArrayLike, weighting: EdgeWeighting | None = None
) -> InteractionGraph:
    """Every movie is a node (unrated ones too, so they still get embeddings); edges go both ways."""
    weighting = weighting or EdgeWeighting()
    movie_ids = np.unique(np.asarray(all_movie_ids, dtype=np.int64))
    kept = interactions.subset(interactions.stars >= weighting.min_stars)
    user_ids = np.unique(kept.user_ids)
    users = np.searchsorted(user_ids, kept.user_ids)
    movies = np.searchsorted(movie_ids, kept.movie_ids)
    if len(kept) and not np.array_equal(movie_ids[np.minimum(movies, len(movie_ids) - 1)], kept.movie_ids):
        raise ValueError("ratings refer to movies missing from all_movie_ids")
    u, m = torch.from_numpy(users.astype(np.int64)), torch.from_numpy(movies.astype(np.int64))
    graph = dgl.heterograph(
        {(USER, RATED, MOVIE): (u, m), (MOVIE, RATED_BY, USER): (m, u)},
        num_nodes_dict={USER: len(user_ids), MOVIE: len(movie_ids)},
    )
    weight = torch.from_numpy(weighting.weights(kept.stars, kept.timestamps))
    graph.edges[RATED].data[WEIGHT] = weight
    graph.edges[RATED_BY].data[WEIGHT] = weight
    return InteractionGraph(graph, movie_ids, user_ids)
