"""bench/generate_movielens.py writes files the import takes as it takes the real ml-25m.
Cross-cutting: a bench script checked against movies/importing.py."""

import csv
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from movies.models import Movie, Profile, Rating
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


def test_a_small_generated_ml25m_shaped_set_is_sound_and_imports_whole(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from generate_movielens import FIRST, LAST, MIN_RATINGS_PER_USER, generate

    directory = tmp_path / "ml-25m"
    summary = generate(directory, scale=0.001, seed=3)
    with (directory / "ratings.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["ratings"] > 0
    per_user = {}
    for row in rows:
        per_user[row["userId"]] = per_user.get(row["userId"], 0) + 1
        assert row["rating"] in {f"{s / 2:g}" for s in range(1, 11)} and FIRST <= int(row["timestamp"]) <= LAST
    assert len(per_user) == summary["users"] and min(per_user.values()) >= MIN_RATINGS_PER_USER
    assert len({(r["userId"], r["movieId"]) for r in rows}) == len(rows), "one rating per user and movie"
    again = generate(tmp_path / "again", scale=0.001, seed=3)
    assert (
        again == summary and (tmp_path / "again/ratings.csv").read_bytes() == (directory / "ratings.csv").read_bytes()
    )
    out = StringIO()
    call_command("import_movielens", str(directory), "--no-progress", stdout=out)
    assert "bad line" not in out.getvalue()
    assert Movie.objects.count() == summary["movies"] and Rating.objects.count() == summary["ratings"]
    assert Profile.objects.count() == summary["users"]
