"""Movie side features: genres, year, title tokens and log-degree, as tensors indexed by movie_index."""

import re
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import torch

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_YEAR_SUFFIX = re.compile(r"\(\d{4}[^)]*\)\s*$")
PAD = 0
UNKNOWN = 1
YEAR_BUCKETS = (1920, 1940, 1960, 1970, 1980, 1985, 1990, 1995, 2000, 2005, 2010, 2015, 2020)


def tokenize(title: str) -> list[str]:
    """Lower-cased word tokens of a title, without its trailing "(YYYY)"."""
    return [token.lower() for token in _TOKEN.findall(_YEAR_SUFFIX.sub("", title))]


@dataclass(frozen=True)
class MovieFeatures:
    genres: torch.Tensor  # (num_movies, num_genres) float32 multi-hot
    year_bucket: torch.Tensor  # (num_movies,) int64, 0 = unknown year
    title_tokens: torch.Tensor  # (num_movies, max_tokens) int64, PAD-padded
    vocabulary: tuple[str, ...]
    genre_names: tuple[str, ...]
    degree_bucket: torch.Tensor | None = None  # (num_movies,) int64, 1 + floor(log2(1 + ratings)); 0 = none

    def __post_init__(self) -> None:
        if self.degree_bucket is None:
            object.__setattr__(self, "degree_bucket", torch.zeros(self.num_movies, dtype=torch.int64))

    @property
    def num_movies(self) -> int:
        return self.genres.shape[0]

    def with_degrees(self, num_ratings: npt.NDArray[np.int64], num_buckets: int = 24) -> "MovieFeatures":
        """The same features with each movie's rating count as a log-scale bucket (popularity is a feature)."""
        buckets = np.where(num_ratings > 0, 1 + np.floor(np.log2(1 + np.asarray(num_ratings))), 0)
        return replace(self, degree_bucket=torch.from_numpy(np.minimum(buckets, num_buckets - 1).astype(np.int64)))


MAX_TAGS = 8  # of a movie's strongest tags, each one token ("#time travel") beside the title's words


def build_movie_features(
    titles: list[str],
    years: list[int | None],
    genres: list[list[str]],
    max_tokens: int = 12,
    min_token_count: int = 2,
    vocabulary: tuple[str, ...] | None = None,
    genre_names: tuple[str, ...] | None = None,
    tags: list[list[str]] | None = None,
) -> MovieFeatures:
    """Features in movie_index order; pass a trained vocabulary to featurise new movies the same way. With
    `tags` (TrainingConfig.use_tags), each movie's first MAX_TAGS tags join its title tokens as whole-tag tokens."""
    token_lists = [tokenize(t)[:max_tokens] for t in titles]
    if tags is not None:
        token_lists = [
            words + ["#" + " ".join(tag.lower().split()) for tag in movie_tags[:MAX_TAGS]]
            for words, movie_tags in zip(token_lists, tags)
        ]
        max_tokens += MAX_TAGS
    if vocabulary is None:
        counts = Counter(token for tokens in token_lists for token in tokens)
        vocabulary = tuple(sorted(t for t, n in counts.items() if n >= min_token_count))
    if genre_names is None:
        genre_names = tuple(sorted({g for movie_genres in genres for g in movie_genres}))
    token_index = {token: i + 2 for i, token in enumerate(vocabulary)}
    tokens = np.full((len(titles), max_tokens), PAD, dtype=np.int64)
    for row, words in enumerate(token_lists):
        tokens[row, : len(words)] = [token_index.get(w, UNKNOWN) for w in words]
    genre_index = {g: i for i, g in enumerate(genre_names)}
    multi_hot = np.zeros((len(titles), max(len(genre_names), 1)), dtype=np.float32)
    for row, movie_genres in enumerate(genres):
        for g in movie_genres:
            if g in genre_index:
                multi_hot[row, genre_index[g]] = 1.0
    buckets = np.array(
        [0 if y is None else 1 + int(np.searchsorted(YEAR_BUCKETS, y, side="right")) for y in years], dtype=np.int64
    )
    return MovieFeatures(
        torch.from_numpy(multi_hot),
        torch.from_numpy(buckets),
        torch.from_numpy(tokens),
        tuple(vocabulary),
        tuple(genre_names),
    )
