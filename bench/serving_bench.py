"""Milvus vs numpy top-10 latency on the live vectors, then "For you" page latency under concurrency."""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples_ms, 50)), 2),
        "p99_ms": round(float(np.percentile(samples_ms, 99)), 2),
        "n": len(samples_ms),
    }


def vector_latency(num_queries: int) -> dict:
    from recommender import runs
    from recommender.serving import live_run, vector_store

    run = live_run()
    if run is None:
        sys.exit("no live training run: run scripts/run (or train_recommender + publish_embeddings) first")
    artifact = runs.load_artifact(run)
    vectors = artifact.embeddings
    store = vector_store()
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(vectors), num_queries)
    store.search(vectors[:1], 10)  # connect and warm up
    milvus, brute = [], []
    for index in picks:
        query = vectors[index][None, :]
        started = time.perf_counter()
        store.search(query, 10)
        milvus.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = vectors @ query[0]
        top = np.argpartition(-scores, 10)[:10]
        top[np.argsort(-scores[top])]
        brute.append((time.perf_counter() - started) * 1000)
    return {
        "num_vectors": int(len(vectors)),
        "dim": int(vectors.shape[1]),
        "milvus": percentiles(milvus),
        "numpy": percentiles(brute),
        "ratio_p50": round(np.percentile(milvus, 50) / np.percentile(brute, 50), 1),
    }


def session_cookies(num_users: int) -> list[str]:
    """Session cookies for imported users, made directly (they have no usable password)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Exists, OuterRef
    from signed_in import session_key_for

    from movies.models import Rating

    # EXISTS stops at a user's first rating; a join with DISTINCT would read all 25M at that size.
    has_rated = Exists(Rating.objects.filter(user=OuterRef("pk")))
    users = get_user_model().objects.filter(has_rated).order_by("id")[:num_users]
    return [session_key_for(user) for user in users]


def page_latency(cookies: list[str], clients: int, requests_per_client: int, workers: int, from_lists: bool) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SERVE_FROM_NEIGHBOR_LISTS": str(from_lists).lower()}
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "recsite.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/for-you/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        for cookie in cookies[: workers * 2]:  # warm each worker's connections
            fetch(url, cookie)
        samples: list[float] = []
        errors = [0]
        lock = threading.Lock()

        def client(number: int) -> None:
            for k in range(requests_per_client):
                # A different user each time while there are enough: every page is computed, none cached.
                cookie = cookies[(number * requests_per_client + k) % len(cookies)]
                started = time.perf_counter()
                ok = fetch(url, cookie)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    samples.append(elapsed)
                    errors[0] += 0 if ok else 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "from_neighbor_lists": from_lists,
        "clients": clients,
        "gunicorn_workers": workers,
        "requests": len(samples),
        "errors": errors[0],
        "requests_per_s": round(len(samples) / seconds, 1),
        **percentiles(samples),
    }


def fetch(url: str, session_key: str) -> bool:
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session_key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status == 200 and b"Because you liked" in body
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests-per-client", type=int, default=25)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--label", default="", help="what the database holds, for the table (e.g. ml-25m)")
    parser.add_argument("--output", default="serving", help="file stem under bench/results/")
    parser.add_argument(
        "--compare-to",
        help="file stem of an earlier result (another data set, same machine, just before or after): print this "
        "run's p50 and pages/s as ratios of that one's, and keep them in this result",
    )
    args = parser.parse_args()
    import django

    django.setup()
    vectors = vector_latency(args.queries)
    cookies = session_cookies(args.clients * args.requests_per_client)
    # Side by side in one run: pages reading the stored neighbour lists, then pages searching Milvus.
    pages = {
        name: page_latency(cookies, args.clients, args.requests_per_client, args.workers, from_lists)
        for name, from_lists in (("stored_lists", True), ("milvus_search", False))
    }
    from movies.models import Movie, Rating

    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "label": args.label,
        "num_movies": Movie.objects.count(),
        "num_ratings": Rating.objects.count(),
        "cpu_count": os.cpu_count(),
        "milvus_uri": os.environ.get("MILVUS_URI", "default"),
        "vectors": vectors,
        "for_you_page": pages,
        "search_over_lists_p50": round(pages["milvus_search"]["p50_ms"] / pages["stored_lists"]["p50_ms"], 1),
    }
    print(f"top-10 over {vectors['num_vectors']} x {vectors['dim']} vectors, {vectors['milvus']['n']} single queries")
    print(f"  {'':18} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'Milvus':18} {vectors['milvus']['p50_ms']:>8} {vectors['milvus']['p99_ms']:>8}")
    print(
        f"  {'numpy brute force':18} {vectors['numpy']['p50_ms']:>8} {vectors['numpy']['p99_ms']:>8}"
        f"   (Milvus / numpy p50: {vectors['ratio_p50']}x)"
    )
    print("'For you' page (a page without personal picks counts as an error):")
    print(
        f"  {'':16} {'clients':>7} {'requests':>8} {'workers':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>6} {'errors':>6}"
    )
    for name, row in pages.items():
        print(
            f"  {name:16} {row['clients']:>7} {row['requests']:>8} {row['gunicorn_workers']:>7} {row['p50_ms']:>8} "
            f"{row['p99_ms']:>8} {row['requests_per_s']:>6} {row['errors']:>6}"
        )
    print(f"  searching / stored lists, p50: {report['search_over_lists_p50']}x")
    if args.compare_to:
        report["compared_to"] = compare(report, json.loads((RESULTS / f"{args.compare_to}.json").read_text()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2))


def compare(report: dict, other: dict) -> dict:
    """This run's 'For you' p50 and pages/s over another's, per way of serving (1.0: the same)."""
    other_name = other.get("label") or other["measured_at"]
    print(f"'For you' against {other_name} ({other.get('num_ratings', 0):,} ratings, measured {other['measured_at']}):")
    print(f"  {'':16} {'p50 ratio':>9} {'pages/s ratio':>13}")
    ratios = {}
    for name, row in report["for_you_page"].items():
        theirs = other["for_you_page"][name]
        ratios[name] = {
            "p50_ratio": round(row["p50_ms"] / theirs["p50_ms"], 2),
            "pages_per_s_ratio": round(row["requests_per_s"] / theirs["requests_per_s"], 2),
        }
        print(f"  {name:16} {ratios[name]['p50_ratio']:>9} {ratios[name]['pages_per_s_ratio']:>13}")
    return {"label": other_name, "measured_at": other["measured_at"], "for_you_page": ratios}


if __name__ == "__main__":
    main()
