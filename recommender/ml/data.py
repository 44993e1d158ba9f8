"""What the database hands the recommender: ratings and the catalogue as numpy arrays (no torch, no dgl),
so that reading them (movies.selectors) never loads the training stack."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interactions:
    """Ratings as parallel arrays of database ids, one entry per rating."""

    user_ids: np.ndarray  # (num_ratings,) int64, User.id
    movie_ids: np.ndarray  # (num_ratings,) int64, Movie.id
    stars: np.ndarray  # (num_ratings,) float32, 0.5 .. 5.0
    timestamps: np.ndarray  # (num_ratings,) int64, Unix seconds

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.user_ids[mask], self.movie_ids[mask], self.stars[mask], self.timestamps[mask])


@dataclass(frozen=True)
class Catalogue:
    movie_ids: np.ndarray  # sorted Movie ids
    titles: list[str]
    years: list[int | None]
    genres: list[list[str]]
    tags: list[list[str]] | None = None  # each movie's strongest tags, when read (a model feature if use_tags)

    def tags_of(self, positions: list[int | None]) -> list[list[str]]:
        """The tags of the movies at these positions ([] for None or when none were read)."""
        return [self.tags[i] if self.tags is not None and i is not None else [] for i in positions]
