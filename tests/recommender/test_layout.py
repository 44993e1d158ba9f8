"""The ML package stays Django-free, and reading the database's arrays never loads the training stack."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ML = sorted(p.stem for p in (ROOT / "recommender" / "ml").glob("*.py") if p.stem != "__init__")


def _loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = code + "; import sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "recsite.settings", **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    import json

    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_ml_package_holds_the_learning_modules() -> None:
    assert {
        "graph",
        "features",
        "sampling",
        "pinsage",
        "training",
        "embeddings",
        "evaluation",
        "scoring",
        "experiment",
        "data",
    } <= set(ML)
    assert not any((ROOT / "recommender" / f"{name}.py").exists() for name in ML)


@pytest.mark.parametrize("module", ML)
def test_no_ml_module_imports_django(module: str) -> None:
    loaded = _loaded_after(f"import recommender.ml.{module}")
    assert not {m for m in loaded if m == "django" or m.startswith("django.")}, module


@pytest.mark.django_db(transaction=True)
def test_reading_ratings_and_the_catalogue_loads_neither_torch_nor_dgl() -> None:
    from tests.conftest import subprocess_database_url

    loaded = _loaded_after(
        "import django; django.setup(); from movies import selectors; "
        "selectors.movie_catalogue(); selectors.ratings_for_training()",
        {"DATABASE_URL": subprocess_database_url()},
    )
    assert "torch" not in loaded and "dgl" not in loaded


def test_the_runs_short_baseline_grid_is_a_part_of_the_full_one() -> None:
    from recommender.ml.experiment import BASELINE_GRIDS, RUN_BASELINE_GRIDS

    assert RUN_BASELINE_GRIDS.keys() == BASELINE_GRIDS.keys()
    assert all(point in BASELINE_GRIDS[name] for name, grid in RUN_BASELINE_GRIDS.items() for point in grid)


def test_the_model_artifact_round_trips_as_one_typed_object(tmp_path: Path) -> None:
    import numpy as np

    from recommender.ml.artifact import ModelArtifact

    saved = ModelArtifact(
        {"w": np.ones(2)},
        {"hidden_dim": 4},
        np.array([3, 7, 9]),
        ("matrix",),
        ("Drama",),
        np.eye(3, 4, dtype=np.float32),
    )
    loaded = ModelArtifact.load(saved.save(tmp_path / "run-1.pt"))
    assert loaded.config == {"hidden_dim": 4} and loaded.vocabulary == ("matrix",) and loaded.genre_names == ("Drama",)
    assert np.array_equal(loaded.movie_ids, [3, 7, 9]) and np.array_equal(loaded.embeddings, saved.embeddings)
    assert loaded.row_of(7) == 1 and loaded.row_of(8) is None
    assert not list(tmp_path.glob("*.part"))


def _imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_only_celery_imports_the_tasks_module() -> None:
    """Control flows one way: tasks call the lifecycle; the lifecycle sends work by name, never by import."""
    sources = [p for d in ("recommender", "movies", "recsite") for p in (ROOT / d).rglob("*.py")]
    importers = [p.relative_to(ROOT) for p in sources if "recommender.tasks" in _imports(p)]
    assert importers == []


def test_every_message_names_a_registered_task() -> None:
    from recommender import outbox
    from recsite.celery import app

    app.loader.import_default_modules()
    assert set(outbox.ALL) <= set(app.tasks)
    assert {name for name in app.tasks if name.startswith("recommender.tasks.")} - set(outbox.ALL) == {
        "recommender.tasks.nightly_retrain",  # sent by beat only
        "recommender.tasks.drop_old_collections",
    }


def test_only_the_lifecycle_changes_a_runs_status() -> None:
    import re

    writes = re.compile(r"status\s*=\s*TrainingRun\.Status\.|\.status\s*=[^=]")
    found = [
        p.relative_to(ROOT)
        for d in ("recommender", "movies", "recsite")
        for p in (ROOT / d).rglob("*.py")
        if p.name != "runs.py" and writes.search(p.read_text().replace("filter(status=TrainingRun", ""))
    ]
    assert found == []
