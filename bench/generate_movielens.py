"""Writes a MovieLens-shaped data set in the ml-25m layout (movies.csv, links.csv, ratings.csv), streaming to
disk in bounded memory: ml-25m's counts at --scale 1 (62,423 movies, 162,541 users, 25,000,095 ratings),
a long tail of movies (lognormal popularity, the head capped near ml-25m's most rated), every user with at least 20 ratings, half-star ratings near ml-25m's mix, and
timestamps spread from 1995 to 2019 in per-user sessions. Seeded; the real files need none of this."""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ML_25M = {"movies": 62_423, "users": 162_541, "ratings": 25_000_095, "max_movie_id": 209_171}
MIN_RATINGS_PER_USER = 20
FIRST, LAST = 789_652_009, 1_574_327_703  # ml-25m's first and last rating times
STARS = np.arange(1, 11) / 2
STAR_SHARES = np.array([1.6, 3.2, 1.6, 6.6, 4.9, 19.8, 13.1, 26.6, 8.8, 13.8])  # % of ml-25m's ratings, 0.5..5


def counts_per_user(num_users: int, total: int, rng: np.random.Generator, most: int) -> np.ndarray:
    """At least 20 each, heavy-tailed like ml-25m (median near 70, a few in the thousands), summing to `total`
    (less at tiny scales, where nobody can rate more than the `most` movies there are)."""
    extra = rng.lognormal(mean=3.6, sigma=1.25, size=num_users)
    extra *= (total - MIN_RATINGS_PER_USER * num_users) / extra.sum()
    counts = MIN_RATINGS_PER_USER + np.floor(extra).astype(np.int64)
    short = total - counts.sum()
    counts[np.argsort(-extra)[: abs(short)]] += np.sign(short)  # the rounding, spread over the busiest users
    return np.minimum(counts, most)


def movie_weights(num_movies: int, rng: np.random.Generator, num_ratings: int, num_users: int) -> np.ndarray:
    """A long tail: lognormal popularity (about half the movies under 10 ratings, some never rated), the head
    capped near ml-25m's most rated movie (81,491 ratings, half its users) since nobody rates a movie twice."""
    weights = rng.lognormal(0.0, 2.4, num_movies)
    cap = min(81_491 / ML_25M["ratings"], 0.5 * num_users / max(num_ratings, 1))
    for _ in range(20):
        weights /= weights.sum()
        if weights.max() <= cap * 1.001:
            break
        weights = np.minimum(weights, cap)
    return weights / weights.sum()


def sample_movies(cdf: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct movie positions drawn by popularity (with replacement, then topped up)."""
    chosen = np.unique(np.searchsorted(cdf, rng.random(int(count * 1.3) + 8), side="right"))
    while len(chosen) < count:
        more = np.searchsorted(cdf, rng.random(count), side="right")
        chosen = np.unique(np.concatenate([chosen, more]))
    return rng.permutation(chosen)[:count]


def user_times(count: int, rng: np.random.Generator) -> np.ndarray:
    """A start skewed to later years, then sessions: most ratings within days, some months or years later."""
    start = FIRST + (LAST - FIRST) * rng.beta(2.2, 1.6)
    gaps = rng.exponential(scale=rng.choice([60.0, 3600.0, 86_400.0 * 30], p=[0.6, 0.3, 0.1]), size=count)
    times = start + np.cumsum(gaps)
    return np.minimum(times, LAST).astype(np.int64)


def write_movies(directory: Path, num_movies: int, max_movie_id: int, rng: np.random.Generator) -> np.ndarray:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from search_bench import generated_titles  # the same MovieLens-shaped titles and genres as the search bench

    ids = np.sort(rng.choice(np.arange(1, max_movie_id + 1), size=num_movies, replace=False))
    titles = generated_titles(num_movies, int(rng.integers(0, 2**31)))
    with (
        (directory / "movies.csv").open("w", newline="", encoding="utf-8") as movies,
        (directory / "links.csv").open("w", newline="", encoding="utf-8") as links,
    ):
        movie_rows, link_rows = csv.writer(movies), csv.writer(links)
        movie_rows.writerow(["movieId", "title", "genres"])
        link_rows.writerow(["movieId", "imdbId", "tmdbId"])
        for movie_id, (title, _, genres) in zip(ids.tolist(), titles):
            movie_rows.writerow([movie_id, title, "|".join(genres) if rng.random() > 0.01 else "(no genres listed)"])
            link_rows.writerow(
                [
                    movie_id,
                    f"{int(rng.integers(1, 9_999_999)):07d}",
                    int(rng.integers(1, 900_000)) if rng.random() > 0.002 else "",
                ]
            )
    return ids


def write_ratings(
    directory: Path, movie_ids: np.ndarray, num_users: int, num_ratings: int, rng: np.random.Generator, progress: bool
) -> int:
    cdf = np.cumsum(movie_weights(len(movie_ids), rng, num_ratings, num_users))
    cdf[-1] = 1.0
    counts = counts_per_user(num_users, num_ratings, rng, most=len(movie_ids))
    shares = STAR_SHARES / STAR_SHARES.sum()
    written, started = 0, time.monotonic()
    with (directory / "ratings.csv").open("w", encoding="ascii") as out:
        out.write("userId,movieId,rating,timestamp\n")
        lines = []
        for user, count in enumerate(counts.tolist(), start=1):
            movies = movie_ids[sample_movies(cdf, count, rng)]
            stars = rng.choice(STARS, size=count, p=shares)
            times = np.sort(user_times(count, rng))
            lines.extend(f"{user},{m},{s:g},{t}" for m, s, t in zip(movies.tolist(), stars.tolist(), times.tolist()))
            if len(lines) >= 200_000:
                out.write("\n".join(lines) + "\n")
                written += len(lines)
                lines = []
                if progress:
                    print(f"\r{written:,} ratings, {time.monotonic() - started:.0f} s", end="", file=sys.stderr)
        if lines:
            out.write("\n".join(lines) + "\n")
            written += len(lines)
    if progress:
        print(file=sys.stderr)
    return written


def generate(directory: Path, scale: float = 1.0, seed: int = 0, progress: bool = False) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    num_movies = max(50, round(ML_25M["movies"] * scale))
    num_users = max(5, round(ML_25M["users"] * scale))
    num_ratings = max(MIN_RATINGS_PER_USER * num_users, round(ML_25M["ratings"] * scale))
    max_movie_id = max(num_movies, round(ML_25M["max_movie_id"] * scale))
    movie_ids = write_movies(directory, num_movies, max_movie_id, rng)
    written = write_ratings(directory, movie_ids, num_users, num_ratings, rng, progress)
    return {"movies": num_movies, "users": num_users, "ratings": written, "seed": seed, "scale": scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of ml-25m's counts (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = generate(args.directory, args.scale, args.seed, progress=sys.stderr.isatty())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
