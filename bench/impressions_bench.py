"""What the impression log costs a page: "For you" and a movie page, in-process requests through the whole Django
stack on ml-latest-small (co-rated picks: no model needed), with the log on and off in alternating rounds of
one run, so both see the same machine. The log as in production: its writer thread, batches every second.
Writes bench/results/impressions.{json,md}."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movielens", default=str(ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small"))
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds, log on then off, each")
    parser.add_argument("--per-round", type=int, default=25, help="requests of each page per round")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from movies import services
    from movies.models import Movie
    from recommender import impressions
    from recommender.models import Impression

    call_command("migrate", verbosity=0)
    if not Movie.objects.exists():
        call_command("import_movielens", args.movielens, verbosity=0)
    person, _ = get_user_model().objects.get_or_create(username="impressions-bench")
    for movie in Movie.objects.order_by("-num_ratings")[:20]:  # a person who rated twenty popular movies
        services.rate_movie(person, movie, "4.5")
    client = Client()
    client.force_login(person)
    movie_ids = list(Movie.objects.order_by("-num_ratings").values_list("id", flat=True)[20:60])
    pages = {"for_you": lambda n: "/for-you/", "movie": lambda n: f"/movies/{movie_ids[n % len(movie_ids)]}/"}
    settings.IMPRESSION_FLUSH_MS = 1000
    before = Impression.objects.count()
    for path in pages.values():  # warm caches, templates and the co-rated lists' queries
        for n in range(5):
            client.get(path(n))
    timings: dict[str, dict[str, list[float]]] = {p: {"on": [], "off": []} for p in pages}
    for _ in range(args.rounds):
        for state in ("on", "off"):
            settings.IMPRESSIONS_ENABLED = state == "on"
            for name, path in pages.items():
                for n in range(args.per_round):
                    started = time.perf_counter()
                    response = client.get(path(n))
                    timings[name][state].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
    time.sleep(2 * settings.IMPRESSION_FLUSH_MS / 1000)  # the writer's last batch
    counters = impressions.counters()
    settings.IMPRESSIONS_ENABLED = True
    shown = movie_ids[:20]
    calls = []
    for _ in range(2000):  # the request's own share: drawing the id and queueing the row
        started = time.perf_counter()
        impressions.log_impression(person.id, "page", "personal", shown, run_id=1)
        calls.append((time.perf_counter() - started) * 1e6)
        if len(calls) % 500 == 0:
            impressions.flush()
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip(),
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "requests_per_state_per_page": args.rounds * args.per_round,
        "pages": {
            name: {
                state: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99))}
                for state, t in by_state.items()
            }
            for name, by_state in timings.items()
        },
        "queue_call_us": {"p50": float(np.percentile(calls, 50)), "p99": float(np.percentile(calls, 99))},
        "written": counters.written,
        "dropped": counters.dropped,
        "failed": counters.failed,
        "rows_in_table": Impression.objects.count() - before,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "impressions.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# The impression log's cost on a page ({report['database']}, ml-latest-small, co-rated picks; "
        f"{report['requests_per_state_per_page']} requests a page with the log on and off, alternating rounds of "
        f"one run; commit {report['commit']})",
        "",
        "| page | p50 off | p50 on | on / off | p99 off | p99 on | on / off |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, states in report["pages"].items():
        off, on = states["off"], states["on"]
        lines.append(
            f"| {name} | {off['p50_ms']:.2f} ms | {on['p50_ms']:.2f} ms | {on['p50_ms'] / off['p50_ms']:.3f} | "
            f"{off['p99_ms']:.2f} ms | {on['p99_ms']:.2f} ms | {on['p99_ms'] / off['p99_ms']:.3f} |"
        )
    lines += [
        "",
        f"Rows written by the log's thread: {report['written']} ({report['rows_in_table']} impressions in the table), "
        f"dropped for a full queue: {report['dropped']}, failed: {report['failed']}. The request's own share "
        f"(drawing the id, queueing the row) took p50 {report['queue_call_us']['p50']:.1f} µs, p99 "
        f"{report['queue_call_us']['p99']:.1f} µs a list; the rest of any difference is the writer thread's "
        "batches sharing the process and the cores.",
    ]
    (RESULTS / "impressions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
