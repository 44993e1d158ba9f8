"""What the database hands the recommender: ratings, the catalogue and per-user histories as numpy arrays (no
torch, no dgl), so that reading them (movies.selectors) never loads the training stack."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Interactions:
    """Ratings as parallel arrays of database ids, one entry per rating."""

    user_ids: npt.NDArray[np.int64]  # (num_ratings,) User.id
    movie_ids: npt.NDArray[np.int64]  # (num_ratings,) Movie.id
    stars: npt.NDArray[np.float32]  # (num_ratings,) 0.5 .. 5.0
    timestamps: npt.NDArray[np.int64]  # (num_ratings,) Unix seconds

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, mask: npt.NDArray[np.bool_]) -> "Interactions":
        return Interactions(self.user_ids[mask], self.movie_ids[mask], self.stars[mask], self.timestamps[mask])


@dataclass(frozen=True)
class Catalogue:
    movie_ids: npt.NDArray[np.int64]  # sorted Movie ids
    titles: list[str]
    years: list[int | None]
    genres: list[list[str]]
    tags: list[list[str]] | None = None  # each movie's strongest tags, when read (a model feature if use_tags)

    def tags_of(self, positions: list[int | None]) -> list[list[str]]:
        """The tags of the movies at these positions ([] for None or when none were read)."""
        return [self.tags[i] if self.tags is not None and i is not None else [] for i in positions]


@dataclass(frozen=True)
class Histories:
    """Rating histories of many users as flat arrays grouped by user, each user's oldest first; ratings of the
    same second keep the order they come in (the split's seeded random tie order, or the order the site
    received them), never an order by movie, which would teach a model with id embeddings a leak. Training
    reads them in this order (the next-movie sampler); the served rule orders them itself (scoring)."""

    starts: npt.NDArray[np.int64]  # (num_users + 1,) offsets
    # (num_ratings,) movie keys (movie_index in evaluation and training, Movie.id in serving)
    movies: npt.NDArray[np.int64]
    stars: npt.NDArray[np.float32]  # (num_ratings,)
    timestamps: npt.NDArray[np.int64]  # (num_ratings,)

    @classmethod
    def of(
        cls,
        users: npt.NDArray[np.int64],
        movies: npt.NDArray[np.int64],
        stars: npt.NDArray[np.float32],
        timestamps: npt.NDArray[np.int64],
        num_users: int,
    ) -> "Histories":
        order = np.lexsort((np.arange(len(users)), timestamps, users))
        starts = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=num_users))]).astype(np.int64)
        return cls(
            starts,
            np.asarray(movies)[order].astype(np.int64),
            np.asarray(stars)[order].astype(np.float32),
            np.asarray(timestamps)[order].astype(np.int64),
        )

    @property
    def num_users(self) -> int:
        return len(self.starts) - 1

    def user_of(self) -> npt.NDArray[np.int64]:
        return np.repeat(np.arange(self.num_users), np.diff(self.starts))
