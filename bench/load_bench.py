"""Locust load on the whole stack (gunicorn, Celery, MariaDB, Redis, milvus-lite), then the same load while Redis
and then the Milvus server are stopped for a while each: throughput, page latency, 5xx and ratings lost."""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
QUERIES = ["star", "love", "the", "man", "night", "war", "city", "girl", "day", "story"]
PAGES = ["home", "search", "movie detail", "for you", "rate"]


class Milvus:
    """The bench's own milvus-lite server, which it stops and starts like an outage."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log, self.process = data_dir, port, log, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/milvus-lite"),
                "server",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=open(self.log, "a"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def stop_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True)


def start_redis() -> None:
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/bench.log",
        ],
        check=True,
    )


def wait_until(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.3)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def health(url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{url}/health/", timeout=10) as response:
            checks = json.load(response)["checks"]
    except urllib.error.HTTPError as error:
        checks = json.load(error)["checks"]
    except OSError as error:
        return {"web": False, "error": str(error)}
    return {name: check["ok"] for name, check in checks.items()}


def prepare_users(phase: str, count: int) -> list[list[str]]:
    """Fresh accounts per phase, so every rating they save is a new row and lost ones show in the count; signed in
    beforehand, since 50 simultaneous password checks (PBKDF2, on purpose slow) would swamp the first seconds."""
    import secrets

    from django.contrib.auth import get_user_model
    from signed_in import session_key_for

    from movies import services

    users = []
    for k in range(count):
        user = get_user_model().objects.create_user(f"load-{phase}-{int(time.time())}-{k}")
        services.create_site_profile(user)
        users.append([user.username, session_key_for(user), secrets.token_hex(16)])  # CSRF secret: 32 characters
    return users


def ratings_by(users: list[list[str]]) -> int:
    from movies.models import Rating

    return Rating.objects.filter(user__username__in=[user[0] for user in users]).count()


def start_stack(env: dict, var: Path, port: int, web_workers: int) -> list[subprocess.Popen]:
    venv = ROOT / ".venv/bin"
    commands = {
        "web": [str(venv / "gunicorn"), "-c", "gunicorn.conf.py", "recsite.wsgi"],
        "worker": [
            str(venv / "celery"),
            "-A",
            "recsite",
            "worker",
            "-n",
            "default@load",
            "-Q",
            "default",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        "beat": [str(venv / "celery"), "-A", "recsite", "beat", "-l", "warning", "-s", str(var / "beat-schedule")],
    }
    web_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(web_workers)}
    return [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=web_env if name == "web" else env,
            stdout=open(var / f"{name}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for name, command in commands.items()
    ]


def inject_faults(milvus: Milvus, seconds: int, events: list) -> None:
    """10 s of normal load, Redis down, 5 s, Milvus down, then back, all inside the locust run."""
    started = time.monotonic()
    steps = [
        (10, "redis stopped", stop_redis),
        (seconds, "redis started", start_redis),
        (5, "milvus stopped", milvus.stop),
        (seconds, "milvus started", milvus.start),
    ]
    for wait, event, action in steps:
        time.sleep(wait)
        action()
        events.append({"t": round(time.monotonic() - started, 1), "event": event})


def sample_health(url: str, samples: list, stop: threading.Event) -> None:
    """/health/ every 2 s in its own thread (a check against a down broker takes seconds)."""
    started = time.monotonic()
    while not stop.wait(2):
        samples.append({"t": round(time.monotonic() - started, 1), **health(url)})


def warm_up(url: str, movie_ids: list[int], num_requests: int) -> None:
    """Unmeasured requests first, so every gunicorn worker has its imports and connections before the clock runs."""
    from django.contrib.auth import get_user_model
    from signed_in import session_key_for

    from movies.models import Rating

    rating = Rating.objects.order_by("id").first()
    user = get_user_model().objects.get(id=rating.user_id) if rating else None
    cookie = f"sessionid={session_key_for(user)}" if user else ""
    paths = ["/", "/for-you/", f"/movies/{movie_ids[0]}/", "/movies/?q=star"]

    def fetch(k: int) -> None:
        request = urllib.request.Request(f"{url}{paths[k % len(paths)]}", headers={"Cookie": cookie})
        urllib.request.urlopen(request, timeout=30).read()

    threads = [threading.Thread(target=fetch, args=(k,)) for k in range(num_requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_locust(plan: dict, url: str, users: int, seconds: int, prefix: Path) -> list:
    plan_file, errors_file = prefix.with_suffix(".plan.json"), prefix.with_suffix(".errors.json")
    plan_file.write_text(json.dumps(plan))
    locust = Path(os.environ["LOCUST_VENV"]) / "bin" / "locust"
    subprocess.run(
        [
            str(locust),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(max(users // 5, 1)),
            "--run-time",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "5",
        ],
        env={**os.environ, "LOAD_USERS_FILE": str(plan_file), "LOAD_ERRORS_FILE": str(errors_file)},
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(errors_file.read_text())


def summarise(prefix: Path, seconds: int) -> dict:
    rows = {row["Name"]: row for row in csv.DictReader(open(f"{prefix}_stats.csv"))}
    pages = {}
    for name in [*PAGES, "Aggregated"]:
        row = rows.get(name)
        if row:
            pages[name] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(int(row["Request Count"]) / seconds, 1),
                **{f"p{q}_ms": float(row[f"{q}%"]) for q in (50, 95, 99)},
            }
    return pages


def phase(name: str, plan_base: dict, url: str, args: argparse.Namespace, milvus: Milvus | None) -> dict:
    users = prepare_users(name, args.users)
    before = ratings_by(users)
    events, samples, stop = [], [], threading.Event()
    threads = [threading.Thread(target=sample_health, args=(url, samples, stop))]
    if milvus:
        threads.append(threading.Thread(target=inject_faults, args=(milvus, args.fault_seconds, events)))
    for thread in threads:
        thread.start()
    prefix = Path(args.var) / name
    server_errors = run_locust({**plan_base, "users": users}, url, args.users, args.seconds, prefix)
    stop.set()
    for thread in threads:
        thread.join()
    pages = summarise(prefix, args.seconds)
    recovered = {}
    for event in events:
        if event["event"].endswith("started"):
            service = event["event"].split()[0]
            check = "broker" if service == "redis" else service
            back = [h["t"] for h in samples if h["t"] >= event["t"] and h.get(check)]
            recovered[service] = round(back[0] - event["t"], 1) if back else None
    accepted = pages["rate"]["requests"] - pages["rate"]["failures"] if "rate" in pages else 0
    saved = ratings_by(users) - before
    # A POST still in flight when locust stops may be saved without being counted: saved can exceed accepted.
    return {
        "pages": pages,
        "server_errors": len(server_errors),
        "ratings_accepted": accepted,
        "ratings_saved": saved,
        "ratings_lost": max(accepted - saved, 0),
        "saved_while_in_flight_at_stop": max(saved - accepted, 0),
        "events": events,
        "health": samples,
        "seen_healthy_again_after_s": recovered,
    }


def plot(report: dict, var: Path, path: Path) -> None:
    """Requests/s and running p95 over time from locust's history files in `var`, outages shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, result in report["phases"].items():
        with open(var / f"{name}_stats_history.csv") as history:
            rows = [r for r in csv.DictReader(history) if r["Name"] == "Aggregated"]
        if not rows:
            continue
        start = int(rows[0]["Timestamp"])
        t = [int(r["Timestamp"]) - start for r in rows]
        axes[0].plot(t, [float(r["Requests/s"]) for r in rows], label=name)
        axes[1].plot(t, [float(r["95%"]) if r["95%"] != "N/A" else float("nan") for r in rows], label=name)
        for stopped, started in zip(result["events"][::2], result["events"][1::2]):
            for ax in axes:
                ax.axvspan(stopped["t"], started["t"], color="red", alpha=0.12)
            axes[0].annotate(stopped["event"].split()[0], (stopped["t"], 0), fontsize=8)
    axes[0].set_ylabel("requests/s")
    axes[1].set_ylabel("p95 ms (running)")
    axes[1].set_xlabel("seconds since start")
    axes[0].legend()
    axes[0].set_title(f"{report['users']} locust users on loopback; shaded: Redis, then Milvus stopped")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def print_table(report: dict) -> None:
    print(f"{'phase':<8} {'page':<14} {'req':>6} {'rps':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'fail':>5}")
    for name, result in report["phases"].items():
        for page, row in result["pages"].items():
            print(
                f"{name:<8} {page:<14} {row['requests']:>6} {row['rps']:>6} {row['p50_ms']:>8.0f} "
                f"{row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} {row['failures']:>5}"
            )
        print(
            f"{name:<8} responses >= 500: {result['server_errors']}, ratings accepted {result['ratings_accepted']}, "
            f"saved {result['ratings_saved']}, lost {result['ratings_lost']}"
        )
        for service, seconds in result["seen_healthy_again_after_s"].items():
            print(f"{name:<8} {service} back in /health/ {seconds} s after it was started again, no restarts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fault-seconds", type=int, default=10)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--milvus-data-dir",
        required=True,
        help="data dir of a milvus-lite server with a live run (not running: this bench starts and stops it)",
    )
    parser.add_argument("--milvus-port", type=int, default=19545)
    parser.add_argument("--var", default=str(ROOT / "var" / "load"))
    args = parser.parse_args()
    Path(args.var).mkdir(parents=True, exist_ok=True)
    if args.seconds < 2 * args.fault_seconds + 35:
        raise SystemExit("--seconds must leave room for both outages and the recovery (2 x fault seconds + 35)")
    os.environ.update({"MILVUS_URI": f"http://127.0.0.1:{args.milvus_port}", "SWEEP_PERIOD_S": "10"})
    milvus = Milvus(Path(args.milvus_data_dir), args.milvus_port, Path(args.var) / "milvus.log")
    milvus.start()
    import django

    django.setup()
    from movies.models import Movie
    from recommender.serving import vector_store

    wait_until(lambda: health_of_store(vector_store), 60, "the milvus-lite server")
    if vector_store().live_collection() is None:
        raise SystemExit("no live run in that Milvus: train and publish one first (scripts/run does)")
    url = f"http://127.0.0.1:{args.port}"
    processes = start_stack({**os.environ}, Path(args.var), args.port, args.web_workers)
    try:
        wait_until(lambda: answers(f"{url}/health/live/"), 60, "gunicorn")
        plan = {"movie_ids": list(Movie.objects.order_by("id").values_list("id", flat=True)), "queries": QUERIES}
        warm_up(url, plan["movie_ids"], 10 * args.web_workers)
        report = {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "users": args.users,
            "seconds": args.seconds,
            "fault_seconds": args.fault_seconds,
            "web_workers": args.web_workers,
            "cpus": os.cpu_count(),
            "phases": {
                "steady": phase("steady", plan, url, args, None),
                "faults": phase("faults", plan, url, args, milvus),
            },
        }
        report["health_after"] = health(url)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        milvus.stop()
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    plot(report, Path(args.var), RESULTS / "load.png")
    (RESULTS / "load.json").write_text(json.dumps(report, indent=2))


def health_of_store(vector_store: object) -> bool:
    from recommender.vector_store import VectorStoreUnavailable

    try:
        vector_store().live_collection()
        return True
    except VectorStoreUnavailable:
        return False


if __name__ == "__main__":
    main()
