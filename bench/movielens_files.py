"""MovieLens folders as recommender inputs, read straight from the files (no database), for benchmarks."""

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from movies import movielens  # noqa: E402
from recommender.ml.data import (
    Catalogue,  # noqa: E402
    Interactions,  # noqa: E402
)

DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "movielens"


def load(directory: Path) -> tuple[Interactions, Catalogue]:
    layout = movielens.detect_layout(directory)
    genre_names = movielens.ml100k_genre_names(directory) if layout.name == "ml-100k" else movielens.ML_100K_GENRES
    movies = sorted(
        (
            r
            for r, _, _ in movielens.iter_records(
                directory / layout.movies, layout, "movies", layout.encoding, genre_names
            )
        ),
        key=lambda r: r.movielens_id,
    )
    catalogue = Catalogue(
        np.array([m.movielens_id for m in movies], dtype=np.int64),
        [m.title for m in movies],
        [m.year for m in movies],
        [list(m.genres) for m in movies],
        _tags(directory, layout, [m.movielens_id for m in movies]),
    )
    ratings = [r for r, _, _ in movielens.iter_records(directory / layout.ratings, layout, "ratings", layout.encoding)]
    interactions = Interactions(
        np.array([r.movielens_user_id for r in ratings], dtype=np.int64),
        np.array([r.movielens_id for r in ratings], dtype=np.int64),
        np.array([float(r.stars) for r in ratings], dtype=np.float32),
        np.array([r.timestamp for r in ratings], dtype=np.int64),
    )
    return interactions, catalogue


def _tags(directory: Path, layout: movielens.Layout, movie_ids: list[int]) -> list[list[str]]:
    """Each movie's tags from tags.csv, the one most people gave first (as movies.selectors orders them:
    strength = 0.5 + 0.1 per person); [] for every movie where the data set has none."""
    path = directory / layout.tags if layout.tags else None
    if path is None or not path.is_file():
        return [[] for _ in movie_ids]
    people: dict[tuple[int, str], set[int]] = {}
    names: dict[str, str] = {}
    for record, _, _ in movielens.iter_records(path, layout, "tags", layout.encoding):
        if isinstance(record, movielens.BadLine):
            continue
        key = movielens.genre_key(record.tag)
        names.setdefault(key, record.tag)
        people.setdefault((record.movielens_id, key), set()).add(record.movielens_user_id)
    by_movie: dict[int, list[tuple[int, str]]] = {}
    for (movie, key), who in people.items():
        by_movie.setdefault(movie, []).append((-min(len(who), 5), names[key]))  # strength is capped at 1.0
    return [[name for _, name in sorted(by_movie.get(m, []))] for m in movie_ids]


def commit_of() -> str:
    """The short commit a result was measured at, written beside it."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
