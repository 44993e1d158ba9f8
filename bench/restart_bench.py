"""Seconds from a Milvus restart back to personal picks, and /health/ and "For you" latency while Milvus hangs."""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from load_bench import Milvus, answers, wait_until
from serving_bench import session_cookies

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
PAGE = "/for-you/"
# Each request carries its number in the query string and gunicorn logs the pid of the worker that answered
# it, so every response is matched to its worker afterwards (a client cannot choose the worker).
ACCESS_FORMAT = '%(p)s "%(r)s" %(s)s %(M)sms'
ACCESS_LINE = re.compile(r'<(\d+)> "GET [^ ?]+\?([nh])=(\d+) ')
# Milvus down: co-rated picks where the catalogue has them, else popular movies, each with its note.
OUTAGE_NOTES = (b"Personal picks are unavailable", b"The recommender is unavailable for a moment")
# Every fallback says why in a note; a personal list has none, and its cards say what they came from
# list of cards (a card's reason may be empty: a pick with no liked movie near it and no shared genre).
FALLBACK_NOTE = b'<p class="note"'
CARD = b'<li class="card">'


@dataclass(frozen=True)
class Response:
    n: int
    sent: float  # time.monotonic()
    done: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    kind: str  # personal, outage (the fallback with its note), popular (another fallback), other, error


def get(url: str, headers: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def kind_of(status: int, body: bytes) -> str:
    if status == 0 or status >= 500:
        return "error"
    if status != 200:
        return "other"
    if any(note in body for note in OUTAGE_NOTES):
        return "outage"
    if FALLBACK_NOTE in body:
        return "popular"
    return "personal" if CARD in body else "other"


class Traffic:
    """Client threads asking for "For you" as signed-in users, one request after another, until stopped."""

    def __init__(self, base_url: str, cookies: list[str], clients: int, pause_s: float) -> None:
        self.base_url, self.cookies, self.pause_s = base_url, cookies, pause_s
        self.responses: list[Response] = []
        self._lock = threading.Lock()
        self._count = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    def _client(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._count += 1
                n = self._count
            cookie = self.cookies[n % len(self.cookies)]  # a different user each time: no page is cached
            sent = time.monotonic()
            status, body = get(f"{self.base_url}{PAGE}?n={n}", {"Cookie": f"sessionid={cookie}"})
            response = Response(n, sent, time.monotonic(), status, kind_of(status, body))
            with self._lock:
                self.responses.append(response)
            self._stop.wait(self.pause_s)

    def between(self, start: float, end: float = float("inf")) -> list[Response]:
        """Responses that arrived in [start, end), in arrival order."""
        with self._lock:
            return sorted((r for r in self.responses if start <= r.done < end), key=lambda r: r.done)


@dataclass(frozen=True)
class HealthSample:
    n: int
    sent: float
    ms: float
    status: int
    milvus_ok: bool | None
    milvus: str  # the milvus check's status or error, as a monitor reads it


class HealthProbe:
    """/health/ with the bearer token, sequentially, about ten a second, from 127.0.0.1 (what ProbeMiddleware serves)."""

    def __init__(self, base_url: str, token: str, period_s: float) -> None:
        self.base_url, self.token, self.period_s = base_url, token, period_s
        self.samples: list[HealthSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def _probe(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = time.monotonic()
            status, body = get(f"{self.base_url}/health/?h={n}", {"Authorization": f"Bearer {self.token}"}, 10)
            ms = (time.monotonic() - sent) * 1000
            try:
                check = json.loads(body)["checks"]["milvus"]
            except (ValueError, KeyError):
                check = {}
            detail = check.get("status") or check.get("error") or ""
            self.samples.append(HealthSample(n, sent, ms, status, check.get("ok"), detail))
            self._stop.wait(max(self.period_s - ms / 1000, 0))


def workers_of(log: Path) -> dict[tuple[str, int], int]:
    """(n or h, request number) -> pid of the gunicorn worker that answered, from the access log."""
    answered = {}
    for line in log.read_text(errors="replace").splitlines():
        match = ACCESS_LINE.search(line)
        if match:
            answered[(match.group(2), int(match.group(3)))] = int(match.group(1))
    return answered


def worker_pids(master: subprocess.Popen) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    return {int(pid) for pid in found}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_grpc(uri: str, port: int, seconds: float) -> tuple[float, float]:
    """(when the port accepted, when Milvus answered get_server_version), polling a fresh channel each time so
    no reconnect backoff delays the answer."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + seconds
    listening = None
    while time.monotonic() < deadline:
        if listening is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    listening = time.monotonic()
            time.sleep(0.01)
            continue
        try:
            client = MilvusClient(uri=uri, timeout=2, dedicated=True)
            client.get_server_version()
            client.close()
            return listening, time.monotonic()
        except Exception:  # not serving yet: any failure means ask again
            time.sleep(0.02)
    raise SystemExit(f"the milvus-lite server at {uri} did not answer within {seconds} s")


def wait_all_personal(
    traffic: Traffic, master: subprocess.Popen, log: Path, since: float, settle_s: float, timeout_s: float
) -> float | None:
    """Waits until every response for settle_s was personal and each current worker answered some of them;
    returns when the last non-personal response after `since` arrived (since itself if there was none), or None
    if that never happened within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        responses = traffic.between(since)
        last_bad = max((r.done for r in responses if r.kind != "personal"), default=since)
        if time.monotonic() - last_bad < settle_s:
            continue
        answered = workers_of(log)
        streak = [answered.get(("n", r.n)) for r in responses if r.done > last_bad]
        if all(streak.count(pid) >= 3 for pid in worker_pids(master)):
            return last_bad
    return None


def per_worker(responses: list[Response], answered: dict, origin: float) -> dict[str, dict]:
    """For each worker: seconds after origin of its first personal page and of its last page that was not."""
    rows: dict[str, dict] = {}
    for r in responses:
        row = rows.setdefault(
            str(answered.get(("n", r.n), "unknown")), {"first_personal_s": None, "last_other_s": None}
        )
        if r.kind == "personal" and row["first_personal_s"] is None:
            row["first_personal_s"] = round(r.done - origin, 2)
        if r.kind != "personal":
            row["last_other_s"] = round(r.done - origin, 2)
    return rows


def raw(responses: list[Response], answered: dict, origin: float) -> list[list]:
    """[request number, sent s, latency ms, status, kind, worker pid], times relative to origin."""
    return [
        [r.n, round(r.sent - origin, 3), round((r.done - r.sent) * 1000, 1), r.status, r.kind, answered.get(("n", r.n))]
        for r in responses
    ]


def restart_cycle(site: dict, milvus: Milvus, args: argparse.Namespace) -> dict:
    """Personal picks steady, SIGTERM to Milvus, args.down_seconds of fallback, start it again, wait for picks."""
    traffic, master, log = site["traffic"], site["master"], site["log"]
    steady = wait_all_personal(traffic, master, log, time.monotonic(), 5, 120)
    if steady is None:
        raise SystemExit("the site never served only personal picks before the restart")
    stopping = time.monotonic()
    milvus.stop()
    stopped = time.monotonic()
    time.sleep(args.down_seconds)
    started = time.monotonic()
    milvus.start()
    listening, answering = wait_for_grpc(site["milvus_uri"], site["milvus_port"], 120)
    last_bad = wait_all_personal(traffic, master, log, answering, args.settle_seconds, args.recover_timeout)
    answered = workers_of(log)
    down = traffic.between(stopped, answering)
    after = traffic.between(answering, time.monotonic())
    first = next((r.done for r in after if r.kind == "personal"), None)
    return {
        "sigterm_to_exit_s": round(stopped - stopping, 2),
        "down_s": round(started - stopped, 2),
        "milvus_boot_s": round(answering - started, 2),
        "milvus_listening_to_answering_s": round(answering - listening, 3),
        "down_kinds": dict(Counter(r.kind for r in down)),
        "down_5xx": sum(1 for r in down if r.status >= 500),
        "down_max_ms": round(max(((r.done - r.sent) * 1000 for r in down), default=0), 1),
        "first_personal_s": round(first - answering, 2) if first else None,
        "all_personal_s": round(last_bad - answering, 2) if last_bad is not None else None,
        "recovery_kinds": dict(Counter(r.kind for r in after)),
        "workers": per_worker(after, answered, answering),
        "samples": raw(traffic.between(stopping - 2), answered, answering),
    }


def percentile_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "max_ms": round(max(values), 1),
    }


def hang(site: dict, milvus: Milvus, args: argparse.Namespace) -> dict:
    """SIGSTOP Milvus for args.hang_seconds with pages and /health/ being asked for, then SIGCONT."""
    traffic, master, log = site["traffic"], site["master"], site["log"]
    if wait_all_personal(traffic, master, log, time.monotonic(), 5, 120) is None:
        raise SystemExit("the site never served only personal picks before the hang")
    probe = HealthProbe(site["url"], site["health_token"], 1 / args.health_per_s)
    probe.start()
    try:
        time.sleep(5)  # a monitor polls all along: health has its rounds before the hang, as in production
        stopped = time.monotonic()
        milvus.process.send_signal(signal.SIGSTOP)
        site["stopped"] = True
        time.sleep(args.hang_seconds)
        milvus.process.send_signal(signal.SIGCONT)
        site["stopped"] = False
        resumed = time.monotonic()
        last_bad = wait_all_personal(traffic, master, log, resumed, args.settle_seconds, args.recover_timeout)
    finally:
        probe.stop()
    return hang_report(traffic, probe.samples, workers_of(log), stopped, resumed, last_bad)


def hang_report(
    traffic: Traffic, health: list[HealthSample], answered: dict, stopped: float, resumed: float, last_bad: float | None
) -> dict:
    pages = sorted(
        (r for r in traffic.between(stopped, resumed + 30) if stopped <= r.sent < resumed), key=lambda r: r.sent
    )
    first_per_worker: dict[str, Response] = {}
    for r in pages:
        first_per_worker.setdefault(str(answered.get(("n", r.n), "unknown")), r)
    latencies = [(r.done - r.sent) * 1000 for r in pages]
    firsts = {r.n for r in first_per_worker.values()}
    after = traffic.between(resumed, time.monotonic())
    first = next((r.done for r in after if r.kind == "personal"), None)
    return {
        **health_report(health, pages, answered, stopped, resumed),
        "pages": {
            **percentile_ms(latencies),
            "over_1s": sum(1 for ms in latencies if ms > 1000),
            "over_1s_not_first_of_worker": sum(1 for r in pages if r.done - r.sent > 1 and r.n not in firsts),
        },
        "page_kinds": dict(Counter(r.kind for r in pages)),
        "page_5xx": sum(1 for r in pages if r.status >= 500),
        "first_page_per_worker_ms": {pid: round((r.done - r.sent) * 1000, 1) for pid, r in first_per_worker.items()},
        "after_sigcont_first_personal_s": round(first - resumed, 2) if first else None,
        "after_sigcont_all_personal_s": round(last_bad - resumed, 2) if last_bad is not None else None,
        "page_samples": raw(pages, answered, stopped),
    }


def health_report(
    health: list[HealthSample], pages: list[Response], answered: dict, stopped: float, resumed: float
) -> dict:
    """Latency and what the milvus check said during the hang; each probe slower than 100 ms with the worker that
    answered it and whether that worker was busy then with a page waiting on Milvus (sync workers queue)."""
    during = [h for h in health if stopped <= h.sent < resumed]
    slow_pages = [r for r in pages if r.done - r.sent > 1]

    def busy(h: HealthSample, pid: int | None) -> bool:
        return any(answered.get(("n", r.n)) == pid and r.sent <= h.sent < r.done for r in slow_pages)

    slow = [(h, answered.get(("h", h.n))) for h in during if h.ms > 100]
    failing = next((h.sent - stopped for h in during if h.milvus_ok is False), None)
    return {
        "health": percentile_ms([h.ms for h in during]),
        "health_before": percentile_ms([h.ms for h in health if h.sent < stopped]),
        "health_statuses": dict(Counter(str(h.status) for h in during)),
        "health_milvus_said": dict(Counter(h.milvus for h in during)),
        "health_first_reports_milvus_down_s": round(failing, 2) if failing is not None else None,
        "health_over_100ms": [
            {"sent_s": round(h.sent - stopped, 2), "ms": round(h.ms, 1), "worker": pid, "worker_busy": busy(h, pid)}
            for h, pid in slow
        ],
        "health_samples": [
            [h.n, round(h.sent - stopped, 3), round(h.ms, 1), h.status, h.milvus_ok, h.milvus, answered.get(("h", h.n))]
            for h in health
        ],
    }


def manage(env: dict, *command: str) -> None:
    subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(env: dict, args: argparse.Namespace) -> None:
    """A scratch site: schema, ml-100k, a short training run, published to the bench's own Milvus."""
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "import_movielens", args.movielens_dir, "--no-progress", "-v0")
    manage(
        env,
        "train_recommender",
        "--epochs",
        str(args.epochs),
        "--batches-per-epoch",
        str(args.batches_per_epoch),
        "--no-baselines",
        "--no-progress",
    )
    manage(env, "publish_embeddings")


def start_site(env: dict, work: Path, port: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "recsite.wsgi",
            "--access-logformat",
            ACCESS_FORMAT,
        ],
        cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)},
        stdout=open(work / "web.log", "w"),
        stderr=subprocess.STDOUT,
    )


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def site_environment(args: argparse.Namespace, work: Path, milvus_port: int) -> dict:
    """The environment every process here shares: scratch paths, production defaults for the breaker and timeout."""
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url or f"sqlite:///{work / 'db.sqlite3'}",
        "RECSITE_VAR_DIR": str(work),
        "MILVUS_URI": f"http://127.0.0.1:{milvus_port}",
        "HEALTH_TOKEN": secrets.token_hex(16),
        "PYTHONUNBUFFERED": "1",
    }
    # Unset, so settings.py's defaults apply (breaker 10 s, timeout 2 s, the filesystem broker, no replica).
    for name in ("MILVUS_BREAKER_S", "MILVUS_TIMEOUT_S", "CELERY_BROKER_URL", "DATABASE_REPLICA_URL", "MILVUS_TOKEN"):
        env.pop(name, None)
    return env


def measure(args: argparse.Namespace, work: Path) -> dict:
    milvus_port, web_port = free_port(), free_port()
    env = site_environment(args, work, milvus_port)
    # This process reads the same database and Milvus as the ones it starts (sessions, readiness).
    os.environ.clear()
    os.environ.update(env)
    milvus = Milvus(work / "milvus", milvus_port, work / "milvus.log")
    site: dict = {"milvus_uri": env["MILVUS_URI"], "milvus_port": milvus_port, "stopped": False}
    milvus.start()
    try:
        wait_for_grpc(env["MILVUS_URI"], milvus_port, 120)
        prepare(env, args)
        return serve_and_measure(env, work, web_port, milvus, site, args)
    finally:
        if site.get("traffic"):
            site["traffic"].stop()
        stop_process(site.get("master"))
        if site["stopped"]:
            milvus.process.send_signal(signal.SIGCONT)
        stop_process(milvus.process)


def serve_and_measure(env: dict, work: Path, port: int, milvus: Milvus, site: dict, args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    site["url"] = f"http://127.0.0.1:{port}"
    site["health_token"] = env["HEALTH_TOKEN"]
    site["log"] = work / "web.log"
    site["master"] = start_site(env, work, port, args.web_workers)
    wait_until(lambda: answers(f"{site['url']}/health/live/"), 60, "gunicorn")
    site["traffic"] = Traffic(site["url"], session_cookies(args.users), args.clients, args.pause)
    site["traffic"].start()
    cycles = []
    for _ in range(args.cycles):
        cycles.append(restart_cycle(site, milvus, args))
        if cycles[-1]["all_personal_s"] is None:
            break  # picks never all came back: what follows would measure a broken site, so stop here
    hung = hang(site, milvus, args) if cycles[-1]["all_personal_s"] is not None else None
    site["traffic"].stop()
    answered = workers_of(site["log"])
    all_pids = sorted({pid for key, pid in answered.items() if key[0] == "n"})
    return {
        "settings": {
            "database": connection.vendor,
            "dataset": Path(args.movielens_dir).name,  # the folder's name: machine paths stay out of results
            "web_workers": args.web_workers,
            "worker_class": "sync",
            "milvus_breaker_s": settings.MILVUS_BREAKER_S,
            "milvus_timeout_s": settings.MILVUS_TIMEOUT_S,
            "serve_from_neighbor_lists": settings.SERVE_FROM_NEIGHBOR_LISTS,
            "broker": settings.CELERY_BROKER_URL,
            **{k: v for k, v in vars(args).items() if k not in ("database_url", "keep")},
        },
        "worker_pids_seen": all_pids,
        "requests": len(site["traffic"].responses),
        "cycles": cycles,
        "hang": hung,
    }


def provenance() -> dict:
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout

    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git("rev-parse", "HEAD").strip(),
        # Files edited but not committed when it ran: the numbers are for that tree, not the commit alone.
        "uncommitted": [line[3:] for line in git("status", "--porcelain").splitlines()],
        "machine": {
            "host": platform.node(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }


def format_table(report: dict) -> str:
    settings, cycles, hung = report["settings"], report["cycles"], report["hang"]
    lines = [
        f"Milvus restart -> personal picks: SIGTERM, {settings['down_seconds']} s down, started again on the same data "
        f"dir; {settings['web_workers']} sync gunicorn workers, breaker {settings['milvus_breaker_s']} s, timeout "
        f"{settings['milvus_timeout_s']} s, {settings['clients']} clients. Seconds after Milvus answered gRPC again "
        "(goal: all personal <= 30 s).",
        f"{'cycle':<6} {'boot s':>6} {'first personal s':>16} {'all personal s':>14}  {'each worker back s':<22} "
        f"{'pages while down':<28} {'5xx':>3}",
    ]
    for number, cycle in enumerate(cycles, 1):
        backs = [w["first_personal_s"] for w in cycle["workers"].values()]
        back = " / ".join(_s(b) for b in sorted(backs, key=lambda b: float("inf") if b is None else b))
        kinds = ", ".join(f"{kind} {count}" for kind, count in cycle["down_kinds"].items())
        kinds += f" (max {cycle['down_max_ms'] / 1000:.1f} s)"
        lines.append(
            f"{number:<6} {cycle['milvus_boot_s']:>6} {_s(cycle['first_personal_s']):>16} "
            f"{_s(cycle['all_personal_s']):>14}  {back:<22} {kinds:<28} {cycle['down_5xx']:>3}"
        )
    firsts, alls = [c["first_personal_s"] for c in cycles], [c["all_personal_s"] for c in cycles]
    lines.append(f"{'max':<6} {'':>6} {_s(_worst(firsts)):>16} {_s(_worst(alls)):>14}")
    if hung:
        lines += hang_lines(settings, hung)
    return "\n".join(lines)


def hang_lines(settings: dict, hung: dict) -> list[str]:
    health, pages = hung["health"], hung["pages"]
    said = "; ".join(f"{count} x {text!r}" for text, count in hung["health_milvus_said"].items())
    slow = hung["health_over_100ms"]
    firsts = " / ".join(f"{ms:.0f}" for ms in hung["first_page_per_worker_ms"].values())
    return [
        f"Milvus hung (SIGSTOP {settings['hang_seconds']} s):",
        f"  /health/ (token, {settings['health_per_s']}/s)  n {health['n']}, p50 {health['p50_ms']} ms, "
        f"p95 {health['p95_ms']} ms, max {health['max_ms']} ms; statuses {hung['health_statuses']} "
        f"(before the hang: p50 {hung['health_before'].get('p50_ms')} ms, max {hung['health_before'].get('max_ms')} ms)",
        f"  milvus check said: {said} (first said down {_s(hung['health_first_reports_milvus_down_s'])} s in)",
        f"  /health/ over 100 ms: {len(slow)}, of which {sum(1 for h in slow if h['worker_busy'])} queued behind a "
        "page waiting on Milvus in the same sync worker",
        f"  For you pages  n {pages['n']}, p50 {pages['p50_ms']} ms, max {pages['max_ms']} ms, over 1 s: "
        f"{pages['over_1s']} ({pages['over_1s_not_first_of_worker']} not a worker's first); kinds "
        f"{hung['page_kinds']}; 5xx {hung['page_5xx']}",
        f"  first page per worker during the hang: {firsts} ms",
        f"  after SIGCONT: first personal {_s(hung['after_sigcont_first_personal_s'])} s, all personal "
        f"{_s(hung['after_sigcont_all_personal_s'])} s",
    ]


def _worst(seconds: list[float | None]) -> float | None:
    return None if None in seconds else max(seconds)


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}"


def dumps(report: dict) -> str:
    """Indented JSON with each raw sample (an innermost list) on one line: real newlines in json.dumps output
    are all indentation, never inside a string, so joining them keeps the JSON the same."""
    text = json.dumps(report, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\n\s*", " ", m.group(1)) + "]", text)


def markdown(report: dict, table: str) -> str:
    machine = report["machine"]
    return (
        "# Restart bench (`bench/restart`)\n\n"
        f"Measured {report['measured_at']} at commit {report['commit'][:10]}"
        f"{' with uncommitted edits' if report['uncommitted'] else ''} on {machine['cpus']} CPUs "
        f"({machine['platform']}); ml-100k, SQLite scratch database, a private milvus-lite server. "
        "Raw samples and every setting: `restart.json`.\n\n```\n" + table + "\n```\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=3, help="Milvus restarts")
    parser.add_argument("--down-seconds", type=float, default=15)
    parser.add_argument("--hang-seconds", type=float, default=20)
    parser.add_argument("--settle-seconds", type=float, default=10, help="all personal this long counts as back")
    parser.add_argument("--recover-timeout", type=float, default=120, help="give up waiting for picks after this")
    parser.add_argument("--clients", type=int, default=4, help="threads asking for For you, one request at a time")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds each client waits between requests")
    parser.add_argument("--users", type=int, default=200, help="signed-in users the clients take turns as")
    parser.add_argument("--health-per-s", type=float, default=10)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--movielens-dir", default=str(ROOT.parent / "shared/data/movielens/ml-100k"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches-per-epoch", type=int, default=20)
    parser.add_argument("--database-url", help="a scratch database (default: SQLite in the work dir)")
    parser.add_argument("--work-dir", help="default: a new temporary directory, removed afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, Milvus data)")
    parser.add_argument("--output", default="restart", help="file stem under bench/results/")
    args = parser.parse_args()
    # A stopped bench still runs its finally blocks, so no server it started outlives it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="restart-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report = provenance()
    try:
        report.update(measure(args, work))
    finally:
        if args.keep or args.work_dir:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["page_sample_columns"] = ["n", "sent_s", "latency_ms", "status", "kind", "worker_pid"]
    report["health_sample_columns"] = ["n", "sent_s", "latency_ms", "status", "milvus_ok", "milvus_check", "worker_pid"]
    table = format_table(report)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(dumps(report) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(report, table))


if __name__ == "__main__":
    main()
