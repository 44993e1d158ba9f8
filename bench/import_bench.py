"""Times import_movielens on real and generated data sets against LOAD DATA LOCAL INFILE of the same rows."""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import MySQLdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_DB = "recsite_bench"


def mysql(database: str | None = None) -> "MySQLdb.Connection":
    return MySQLdb.connect(
        host="127.0.0.1", user="root", local_infile=1, charset="utf8mb4", **({"database": database} if database else {})
    )


def reset_database() -> None:
    connection = mysql()
    cursor = connection.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    cursor.execute(f"CREATE DATABASE {BENCH_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    cursor.execute("SET GLOBAL local_infile = 1")
    connection.close()
    manage("migrate", "-v0")


def manage(*args: str) -> str:
    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{BENCH_DB}"}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def time_import(directory: Path) -> tuple[float, str, float]:
    """Seconds, output and the largest resident memory (MB) of any child so far: the first import is the
    first child that loads ratings, so after it this is that import's peak."""
    started = time.perf_counter()
    output = manage("import_movielens", str(directory), "--no-progress")
    return time.perf_counter() - started, output, peak_child_mb()


def peak_child_mb() -> float:
    """The largest resident set of any child so far (ru_maxrss is in kB on Linux); each import is a new child."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


SERVER_SETTINGS = (
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "innodb_flush_log_at_trx_commit",
    "innodb_doublewrite",
    "max_allowed_packet",
    "version",
)


def server_settings() -> dict[str, str]:
    """The MariaDB settings both the import and LOAD DATA ran under (the bench changes none of them)."""
    cursor = mysql().cursor()
    cursor.execute(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ", ".join(["%s"] * len(SERVER_SETTINGS)) + ")",
        SERVER_SETTINGS,
    )
    return dict(cursor.fetchall())


BARE_TABLE = "CREATE TABLE bare_ratings (user_id INT, movie_id INT, stars DECIMAL(2,1), ts BIGINT) ENGINE=InnoDB"
INDEXED_TABLE = (
    "CREATE TABLE bare_ratings (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id INT, movie_id INT, "
    "stars DECIMAL(2,1), ts BIGINT, UNIQUE KEY (user_id, movie_id), KEY (movie_id, stars), KEY (ts)) ENGINE=InnoDB"
)


def time_load_data(ratings: Path, separator: str, skip_header: bool, create: str = BARE_TABLE) -> float:
    """LOAD DATA of the ratings file into a bare table: the fastest MariaDB can take these rows."""
    with ratings.open("rb") as handle:
        line_end = "\\r\\n" if handle.readline().endswith(b"\r\n") else "\\n"
    connection = mysql(BENCH_DB)
    cursor = connection.cursor()
    cursor.execute("DROP TABLE IF EXISTS bare_ratings")
    cursor.execute(create)
    started = time.perf_counter()
    cursor.execute(
        f"LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE bare_ratings FIELDS TERMINATED BY %s "
        f"LINES TERMINATED BY '{line_end}' {'IGNORE 1 LINES' if skip_header else ''} (user_id, movie_id, stars, ts)",
        (str(ratings), separator),
    )
    connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def generate_ml1m(directory: Path, seed: int = 0) -> int:
    """An ml-1m-shaped folder: 6,040 users, 3,706 movies, 1,000,209 ratings with skewed popularity."""
    rng = np.random.default_rng(seed)
    num_users, num_movies, num_ratings = 6040, 3706, 1_000_209
    directory.mkdir(parents=True, exist_ok=True)
    genres = ["Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller", "Western"]
    with (directory / "movies.dat").open("w", encoding="latin-1") as out:
        for m in range(1, num_movies + 1):
            out.write(f"{m}::Generated Film {m} ({1919 + m % 82})::{genres[m % 7]}|{genres[(m * 3) % 7]}\n")
    with (directory / "users.dat").open("w") as out:
        for u in range(1, num_users + 1):
            out.write(f"{u}::{'MF'[u % 2]}::{[1, 18, 25, 35, 45, 50, 56][u % 7]}::{u % 21}::{10000 + u}\n")
    popularity = 1.0 / np.arange(1, num_movies + 1) ** 0.9
    popularity /= popularity.sum()
    activity = rng.pareto(1.2, num_users) + 1
    per_user = np.maximum(20, (activity / activity.sum() * num_ratings)).astype(int)
    per_user = np.minimum(per_user, num_movies)
    while per_user.sum() != num_ratings:
        gap = num_ratings - per_user.sum()
        pick = rng.integers(0, num_users, abs(gap))
        np.add.at(per_user, pick, 1 if gap > 0 else -1)
        per_user = np.clip(per_user, 20, num_movies)
    with (directory / "ratings.dat").open("w") as out:
        for u in range(num_users):
            movies = rng.choice(num_movies, size=per_user[u], replace=False, p=popularity) + 1
            stars = rng.integers(1, 6, per_user[u])
            stamps = 956703932 + rng.integers(0, 90_000_000, per_user[u])
            out.writelines(f"{u + 1}::{m}::{s}::{t}\n" for m, s, t in zip(movies, stars, stamps))
    return num_ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-root",
        default=str(ROOT.parent / "shared" / "data" / "movielens"),
        help="folder holding ml-100k/ and ml-latest-small/",
    )
    parser.add_argument("--skip-1m", action="store_true", help="leave out the generated 1M data set")
    parser.add_argument(
        "--generated",
        action="append",
        default=[],
        metavar="DIR",
        help="also a folder written by bench/generate_movielens.py (the ml-25m layout); may be repeated",
    )
    parser.add_argument("--only-generated", action="store_true", help="leave out the real and 1M sets")
    parser.add_argument(
        "--no-rerun",
        action="store_true",
        help="skip the second, no-op import of each set (20 minutes at 25M); the database keeps the first import",
    )
    parser.add_argument(
        "--buffer-pool-gb",
        type=float,
        help="set innodb_buffer_pool_size for the whole bench, import and LOAD DATA alike (MariaDB resizes it "
        "online; the default 128 MB thrashes on 25M ratings' indexes, an operator loading them would raise it)",
    )
    args = parser.parse_args()
    if args.buffer_pool_gb:
        cursor = mysql().cursor()
        cursor.execute(f"SET GLOBAL innodb_buffer_pool_size = {int(args.buffer_pool_gb * 2**30)}")
        time.sleep(5)  # the resize runs in the background
    data_root = Path(args.data_root)
    cases = [
        ("ml-100k", data_root / "ml-100k", "u.data", "\t", False),
        ("ml-latest-small", data_root / "ml-latest-small", "ratings.csv", ",", True),
    ]
    if args.only_generated:
        cases, args.skip_1m = [], True
    for folder in map(Path, args.generated):
        cases.append((f"{folder.name} (generated)", folder, "ratings.csv", ",", True))
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    if not args.skip_1m:
        generate_ml1m(workdir / "ml-1m")
        cases.append(("ml-1m (generated)", workdir / "ml-1m", "ratings.dat", "::", False))
    rows = []
    for name, directory, ratings_file, separator, header in cases:
        if not directory.is_dir():
            print(f"skipping {name}: {directory} not found", file=sys.stderr)
            continue
        num_ratings = sum(1 for _ in (directory / ratings_file).open("rb")) - int(header)
        reset_database()
        print(f"{name}: importing {num_ratings:,} ratings", file=sys.stderr, flush=True)
        import_s, _, import_mb = time_import(directory)
        print(f"{name}: imported in {import_s:.0f} s", file=sys.stderr, flush=True)
        rerun_s, rerun_output = None, ""
        if not args.no_rerun:
            rerun_s, rerun_output, _ = time_import(directory)  # its peak would be the running maximum again
            print(f"{name}: rerun in {rerun_s:.0f} s", file=sys.stderr, flush=True)
        print(f"{name}: LOAD DATA into a bare table", file=sys.stderr, flush=True)
        load_s = time_load_data(directory / ratings_file, separator, header)
        print(f"{name}: LOAD DATA {load_s:.0f} s; into an indexed table", file=sys.stderr, flush=True)
        indexed_s = time_load_data(directory / ratings_file, separator, header, INDEXED_TABLE)
        print(f"{name}: indexed LOAD DATA {indexed_s:.0f} s", file=sys.stderr, flush=True)
        rows.append(
            {
                "dataset": name,
                "ratings": num_ratings,
                "import_s": round(import_s, 2),
                "import_rows_per_s": round(num_ratings / import_s),
                "rerun_s": round(rerun_s, 2) if rerun_s is not None else None,
                "rerun_unchanged": "0 new, 0 changed" in rerun_output.split("ratings")[-1] if rerun_output else None,
                "load_data_s": round(load_s, 2),
                "load_data_rows_per_s": round(num_ratings / load_s),
                "ratio_import_to_load_data": round(import_s / load_s, 2),
                "load_data_indexed_s": round(indexed_s, 2),
                "ratio_import_to_indexed_load_data": round(import_s / indexed_s, 2),
                "import_peak_mb": round(import_mb),
            }
        )
    print_table(rows)
    settings = server_settings()
    print("server settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "import_generated.json" if args.only_generated else "import.json"
    (RESULTS / name).write_text(
        json.dumps(
            {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "cpu_count": os.cpu_count(),
                "server_settings": settings,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {RESULTS / name}")


def print_table(rows: list[dict]) -> None:
    print("import s: manage.py import_movielens end to end (process start, movies, users, ratings);")
    print("LOAD DATA s: the ratings file into a bare table; indexed s: into a table with the ratings indexes\n")
    header = f"{'data set':20} {'ratings':>10} {'import s':>9} {'rows/s':>9} {'LOAD DATA s':>12} {'rows/s':>10} {'ratio':>6} {'indexed s':>9} {'ratio':>6} {'rerun s':>8} {'no-op':>6} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['dataset']:20} {r['ratings']:>10,} {r['import_s']:>9} {r['import_rows_per_s']:>9,} "
            f"{r['load_data_s']:>12} {r['load_data_rows_per_s']:>10,} {r['ratio_import_to_load_data']:>6} "
            f"{r['load_data_indexed_s']:>9} {r['ratio_import_to_indexed_load_data']:>6} "
            f"{_shown(r['rerun_s']):>8} {_shown(r['rerun_unchanged']):>6} {r.get('import_peak_mb', 0):>8}"
        )


def _shown(value: object) -> str:
    return "-" if value is None else str(value)


if __name__ == "__main__":
    main()
