"""Deletes, one at a time, each line that carries a write's consequence for the recommender, runs the fast
consequence tests, and fails if any deletion leaves them all passing (a consequence no test would miss).

Run by `scripts/mutation-check` (and .ci/run). Each line is named by its file and its text, so an edit that
moves it keeps the check; one that rewrites it makes the check stop with "not found", never pass silently."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/test_consequences.py",
    "tests/movies/test_importing.py::test_an_import_marks_the_change_once_not_per_rating",
]
# (file, the line's text stripped, which occurrence): what happens because of a write, and what makes it happen.
LINES = [
    ("movies/services.py", "events.send(events.ratings_changed, num_changes=1)", 0),  # a rating
    ("movies/services.py", "events.send(events.ratings_changed, num_changes=1)", 1),  # a rating removed
    ("movies/services.py", 'events.send(events.person_acted, user_id=user.id, movie_id=movie.id, action="rating")', 0),
    ("movies/services.py", 'events.send(events.person_acted, user_id=user.id, movie_id=movie.id, action="hidden")', 0),
    ("movies/services.py", "events.send(events.movie_saved, movie_id=movie_id)", 0),
    ("movies/services.py", "events.send(events.movies_deleted, movie_ids=movie_ids)", 0),
    ("movies/importing.py", "events.send(events.ratings_changed, num_changes=changed)", 0),
    ("movies/admin.py", "services.movie_saved(form.instance.id)", 0),
    ("movies/admin.py", "services.delete_movies(movie_ids)", 0),
    (
        "recommender/apps.py",
        'events.ratings_changed.connect(on_ratings_changed, weak=False, dispatch_uid="recommender")',
        0,
    ),
    ("recommender/apps.py", 'events.movie_saved.connect(on_movie_saved, weak=False, dispatch_uid="recommender")', 0),
    ("recommender/apps.py", 'events.person_acted.connect(on_person_acted, weak=False, dispatch_uid="recommender")', 0),
    ("recommender/apps.py", "transaction.on_commit(lambda: impressions.note_action(user_id, movie_id, action))", 0),
    (
        "recommender/apps.py",
        'events.movies_deleted.connect(on_movies_deleted, weak=False, dispatch_uid="recommender")',
        0,
    ),
    ("recommender/runs.py", "transaction.on_commit(lambda: outbox.send_soon(outbox.MAYBE_RETRAIN))", 0),
    ("recommender/runs.py", "send_publish(run_id)", 0),
    ("recommender/vectors.py", "transaction.on_commit(lambda: outbox.send_soon(outbox.EMBED_MOVIE, movie_id))", 0),
    (
        "recommender/vectors.py",
        "MovieRemoval.objects.bulk_create([MovieRemoval(movie_id=i) for i in ids if i not in existing])",
        0,
    ),
    ("recommender/vectors.py", "transaction.on_commit(lambda: outbox.send_soon(outbox.REMOVE_MOVIES, ids))", 0),
]


def mutated(text: str, line: str, occurrence: int) -> str:
    rows = text.split("\n")
    hits = [i for i, row in enumerate(rows) if row.strip() == line]
    if len(hits) <= occurrence:
        raise SystemExit(
            f"mutation-check: {line!r} (occurrence {occurrence}) not found; update scripts/mutation_check.py"
        )
    at = hits[occurrence]
    indent = rows[at][: len(rows[at]) - len(rows[at].lstrip())]
    rows[at] = f"{indent}pass  # mutation-check removed: {line}"
    return "\n".join(rows)


def run_tests() -> "subprocess.CompletedProcess[str]":
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}  # fast: SQLite
    command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def main() -> int:
    baseline = run_tests()
    if baseline.returncode != 0:
        print(baseline.stdout[-3000:])
        raise SystemExit("mutation-check: the consequence tests fail before any mutation")
    survived = []
    for path, line, occurrence in LINES:
        file = ROOT / path
        original = file.read_text()
        started = time.monotonic()
        try:
            file.write_text(mutated(original, line, occurrence))
            done = run_tests()
        finally:
            file.write_text(original)
        verdict = "caught" if done.returncode != 0 else "SURVIVED"
        print(f"{verdict:8} {path}: {line} [{occurrence}] ({time.monotonic() - started:.0f} s)", flush=True)
        if done.returncode == 0:
            survived.append(f"{path}: {line}")
    if survived:
        print("No test fails without these consequences:\n  " + "\n  ".join(survived))
        return 1
    print(f"mutation-check: all {len(LINES)} consequence lines are guarded by a test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
