"""A newcomer's first minutes, measured: `scripts/run` on a cold database with ml-latest-small, and the seconds
until the site answers, a movie page shows similar movies, a new user's page shows personal picks (co-rated,
then the model's) and the first model is live; with what scripts/run printed about when that would be.
Writes bench/results/first_run.{json,md,png}."""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small"
ESTIMATE = re.compile(r"live in about (\d+) (s|min)")
FIRST_RATINGS = ("toy story", "the matrix", "star wars 4", "pulp fiction", "forrest gump")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database(url: str) -> None:
    """Drops and creates the bench's own MariaDB database: a cold start has nothing in it."""
    import MySQLdb

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    connection = MySQLdb.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root", password=parts.password or ""
    )
    cursor = connection.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    connection.close()


class Watcher:
    """scripts/run's output, each line with the second it arrived."""

    def __init__(self, process: subprocess.Popen, started: float) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process, self.started = process, started

    def drain(self) -> None:
        os.set_blocking(self.process.stdout.fileno(), False)
        while True:
            line = self.process.stdout.readline()
            if not line:
                return
            self.lines.append((time.monotonic() - self.started, line.rstrip()))
            print(f"[{self.lines[-1][0]:7.1f} s] {line.rstrip()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--database-url", default="mysql://root@127.0.0.1:3306/recsite_bench_first_run")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--limit-s", type=float, default=2400.0, help="give up on the model going live after this")
    args = parser.parse_args()
    fresh_database(args.database_url)
    subprocess.run(["redis-cli", "-n", args.broker_url.rsplit("/", 1)[1], "flushdb"], check=False, capture_output=True)
    port, var = free_port(), Path(tempfile.mkdtemp(prefix="first-run-"))
    env = {
        **os.environ,
        "MOVIELENS_DIR": args.data,
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "RECSITE_VAR_DIR": str(var),
        "PORT": str(port),
        "MILVUS_PORT": str(free_port()),
    }
    env.pop("MILVUS_URI", None)
    started = time.monotonic()
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watcher = Watcher(process, started)
    base = f"http://127.0.0.1:{port}"
    marks: dict[str, float] = {}
    sources: list[tuple[float, str]] = []
    browser = requests.Session()
    movie_id, signed_up = None, False
    try:
        while time.monotonic() - started < args.limit_s and "model_picks" not in marks:
            watcher.drain()
            if process.poll() is not None:
                raise SystemExit(f"scripts/run exited with {process.returncode}")
            now = time.monotonic() - started
            try:
                if "site" not in marks and browser.get(base + "/", timeout=5).status_code == 200:
                    marks["site"] = now
                if "site" in marks and movie_id is None:
                    found = browser.get(base + "/api/movies/", params={"q": "toy story"}, timeout=5).json()
                    movie_id = found["results"][0]["movie_id"] if found.get("results") else None
                if movie_id and "similar" not in marks:
                    similar = browser.get(f"{base}/api/movies/{movie_id}/similar/", timeout=5).json()
                    if similar.get("results"):
                        marks["similar"] = now
                        marks["similar_source"] = similar["source"]
                if "similar" in marks and not signed_up:
                    signed_up = sign_up_and_rate(browser, base)
                    marks["signed_up"] = time.monotonic() - started
                if signed_up:
                    picks = browser.get(base + "/api/recommendations/", timeout=10).json()
                    now = time.monotonic() - started  # when this answer came, not when the round began
                    source = picks.get("source", "")
                    if not sources or sources[-1][1] != source:
                        sources.append((now, source))
                    if source in ("co_rated", "personal") and picks.get("results") and "first_picks" not in marks:
                        marks["first_picks"] = now
                        marks["first_picks_source"] = source
                    if source == "personal" and picks.get("results"):
                        marks["model_picks"] = now
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1.0)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        watcher.drain()
    report = summarise(marks, sources, watcher.lines, args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_run.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "first_run.md").write_text(format_report(report) + "\n")
    plot(report, RESULTS / "first_run.png")
    print(format_report(report))


def sign_up_and_rate(browser: requests.Session, base: str) -> bool:
    """A new person signs up through the form and rates five well-known movies, as the onboarding asks."""
    page = browser.get(base + "/signup/", timeout=10)
    token = browser.cookies.get("csrftoken")
    name = f"newcomer{int(time.time())}"
    password = "a-long-pass-phrase-7"
    form = {"csrfmiddlewaretoken": token, "username": name, "password1": password, "password2": password}
    response = browser.post(base + "/signup/", data=form, headers={"Referer": page.url}, timeout=30)
    if response.status_code != 200 or "/for-you/" not in response.url:
        return False
    token = browser.cookies.get("csrftoken")
    for query in FIRST_RATINGS:
        found = browser.get(base + "/api/movies/", params={"q": query}, timeout=10).json()["results"]
        browser.post(
            f"{base}/movies/{found[0]['movie_id']}/rate/",
            data={"csrfmiddlewaretoken": token, "stars": "4.5"},
            headers={"Referer": base + "/movies/"},
            timeout=10,
        )
    return True


def summarise(marks: dict, sources: list, lines: list, args: argparse.Namespace) -> dict:
    estimates = []
    for at, text in lines:
        found = ESTIMATE.search(text)
        if found:
            seconds = float(found.group(1)) * (60 if found.group(2) == "min" else 1)
            estimates.append(
                {"at_s": round(at, 1), "said_left_s": seconds, "predicted_live_at_s": round(at + seconds, 1)}
            )
    live_line = next((at for at, text in lines if "Personal picks from the model are live" in text), None)
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "data": Path(args.data).name,
        "cpus": os.cpu_count(),
        "marks_s": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in marks.items()},
        "sources": [{"at_s": round(at, 1), "source": s} for at, s in sources],
        "estimates": estimates,
        "live_said_at_s": live_line,
        "output": [f"{at:.1f} {text}" for at, text in lines][-200:],
    }


def format_report(report: dict) -> str:
    marks = report["marks_s"]

    def at(key: str) -> str:
        return f"{marks[key]:.0f} s" if key in marks else "not reached"

    lines = [
        f"# First run: `scripts/run` on a cold database, {report['data']}, {report['cpus']} cores "
        f"(commit {report['commit']}, {report['measured_at']})",
        "",
        "| moment | seconds from start |",
        "|---|---|",
        f"| the site answers | {at('site')} |",
        f"| a movie page shows similar movies ({marks.get('similar_source', '—')}) | {at('similar')} |",
        f"| a new user signed up and rated 5 movies | {at('signed_up')} |",
        f"| their page shows personal picks ({marks.get('first_picks_source', '—')}) | {at('first_picks')} |",
        f"| their page shows the model's picks (the first run live) | {at('model_picks')} |",
        "",
    ]
    if report["estimates"]:
        lines += [
            "What scripts/run said about when the first model would be live:",
            "",
            "| said at | said left | predicted live at |",
            "|---|---|---|",
        ]
        lines += [
            f"| {e['at_s']:.0f} s | {e['said_left_s']:.0f} s | {e['predicted_live_at_s']:.0f} s |"
            for e in report["estimates"]
        ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5))
    estimates = report["estimates"]
    if estimates:
        axis.plot(
            [e["at_s"] for e in estimates],
            [e["predicted_live_at_s"] for e in estimates],
            "o-",
            label="predicted live at",
        )
    marks = report["marks_s"]
    for key, label, style in (
        ("site", "site up", ":"),
        ("similar", "similar movies", "--"),
        ("first_picks", "personal picks", "-."),
        ("model_picks", "model live", "-"),
    ):
        if key in marks:
            axis.axvline(marks[key], linestyle=style, color="k", alpha=0.6, label=f"{label} ({marks[key]:.0f} s)")
    if "model_picks" in marks:
        axis.axhline(marks["model_picks"], color="tab:green", alpha=0.4, label="actual live time")
    axis.set_xlabel("seconds since scripts/run started")
    axis.set_ylabel("seconds")
    axis.set_title("First run: when things became available, and the live-time estimate", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
