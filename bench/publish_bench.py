"""Publishing at ml-25m's catalogue size: each movie's exact 100 nearest movies (the all-pairs product,
`vectors.nearest_movies`) and the write of vectors and neighbour lists to a new Milvus collection through
`VectorStore.publish` (batches, flush, HNSW index, load, count and probe checks, alias switch), timed apart,
with the process's peak memory. Unit vectors clustered like a trained model's stand in for one: neither step
looks at what the vectors mean. Starts its own milvus-lite server; writes bench/results/publish.json."""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def clustered_vectors(num_movies: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 200 centres, so nearest lists are as uneven as a real model's."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim))
    vectors = centres[rng.integers(0, 200, num_movies)] + 0.7 * rng.normal(size=(num_movies, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movies", type=int, nargs="+", default=[9_742, 62_423])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--port", type=int, default=19547)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    os.environ["MILVUS_URI"] = f"http://127.0.0.1:{args.port}"
    import django

    django.setup()
    from recommender.vector_store import MovieVectors, VectorStore
    from recommender.vectors import nearest_movies

    data_dir = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/milvus-lite"),
            "server",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    rows = []
    try:
        store = VectorStore(f"http://127.0.0.1:{args.port}", timeout=30, alias="bench")
        deadline = time.time() + 60
        while True:
            try:
                store.run_collections()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        for run_id, num_movies in enumerate(args.movies, start=1):
            vectors = clustered_vectors(num_movies, args.dim)
            movie_ids = np.arange(1, num_movies + 1, dtype=np.int64) * 3  # sparse ids, as MovieLens's are
            started = time.perf_counter()
            neighbors, scores = nearest_movies(movie_ids, vectors)
            lists_s = time.perf_counter() - started
            genres = [["Drama"] if i % 2 else ["Comedy", "Romance"] for i in range(num_movies)]
            movies = MovieVectors(
                movie_ids, vectors, (1950 + np.arange(num_movies) % 70).astype(np.int32), genres, neighbors, scores
            )
            started = time.perf_counter()
            name = store.publish(run_id, movies)
            publish_s = time.perf_counter() - started
            started = time.perf_counter()
            hits = store.search(vectors[:1], 10)
            search_ms = (time.perf_counter() - started) * 1000
            rows.append(
                {
                    "movies": num_movies,
                    "dim": args.dim,
                    "neighbor_lists_s": round(lists_s, 1),
                    "publish_s": round(publish_s, 1),
                    "total_s": round(lists_s + publish_s, 1),
                    "first_search_ms": round(search_ms, 1),
                    "top_hit_is_itself": bool(hits[0] and hits[0][0].movie_id == int(movie_ids[0])),
                    "collection": name,
                    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\n{'movies':>8} {'lists s':>8} {'publish s':>10} {'total s':>8} {'peak MB':>8}")
    for r in rows:
        print(
            f"{r['movies']:>8,} {r['neighbor_lists_s']:>8} {r['publish_s']:>10} {r['total_s']:>8} {r['peak_memory_mb']:>8}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish.json").write_text(
        json.dumps(
            {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpu_count": os.cpu_count(), "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
