"""The house's rules, cross-cutting (they read every package, not one module). Imports run one way, read from
the import graph (every import statement, in functions too): the wiring on top, then the web layer, the
recommender, the catalogue, and the Django-free ML package at the bottom. The ML package stays Django-free,
reading the database's arrays never loads the training stack, only Celery imports recommender.tasks, and only
the lifecycle (recommender/runs.py) changes a run's status."""

import ast
from pathlib import Path

import pytest

from tests.conftest import modules_loaded_after

ROOT = Path(__file__).resolve().parent.parent
# Highest first. A module may import its own floor and those below, never one above.
FLOORS = ("recsite", "web", "recommender", "movies", "recommender.ml")
ML = sorted(p.stem for p in (ROOT / "recommender" / "ml").glob("*.py") if p.stem != "__init__")


def floor_of(module: str) -> int | None:
    """Index into FLOORS (0 = top) of the longest package that holds the module; None when it is not ours."""
    found = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    return FLOORS.index(max(found, key=len)) if found else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str | None = None) -> list[tuple[int, str]]:
    """(line, module) for every import in the file (module `name`, by default its place in the repository),
    relative ones resolved."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # "from movies import events"
    return found


def layered_modules() -> dict[str, Path]:
    files = sorted(p for top in ("recsite", "web", "recommender", "movies") for p in (ROOT / top).rglob("*.py"))
    return {module_name(p): p for p in files}


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Every import that runs up, for modules given as name -> file."""
    wrong = []
    for name, path in modules.items():
        mine = floor_of(name)
        assert mine is not None, name
        for line, target in imports_of(path, name):
            theirs = floor_of(target)
            if theirs is not None and theirs < mine:
                wrong.append(f"{name}:{line} imports {target} ({FLOORS[theirs]} is above {FLOORS[mine]})")
    return wrong


def test_no_import_runs_up_the_house() -> None:
    modules = layered_modules()
    assert len(modules) > 40
    assert upward_imports(modules) == []


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    """A probe read as a catalogue module: a function-level import of the recommender is caught, a string naming
    it is not an import, and a relative import is resolved to its package."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""from recommender import runs"""\n\n\ndef later() -> None:\n    from recommender.runs import note_data_changed\n'
        "    from . import selectors\n    from ..web import views\n"
    )
    assert upward_imports({"movies.probe": probe}) == [
        "movies.probe:5 imports recommender.runs.note_data_changed (recommender is above movies)",
        "movies.probe:7 imports web.views (web is above movies)",
    ]


def test_the_ml_package_imports_nothing_of_ours_above_it() -> None:
    files = sorted((ROOT / "recommender" / "ml").rglob("*.py"))
    ours = {t for f in files for _, t in imports_of(f) if floor_of(t) is not None}
    assert ours and all(t.startswith("recommender.ml") for t in ours), sorted(ours)


# The ML package stays Django-free, reading ratings never loads the training stack, and the lifecycle alone
# changes a run's status.


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
    loaded = modules_loaded_after(f"import recommender.ml.{module}")
    assert not {m for m in loaded if m == "django" or m.startswith("django.")}, module


@pytest.mark.django_db(transaction=True)
def test_reading_ratings_and_the_catalogue_loads_neither_torch_nor_dgl() -> None:
    from tests.conftest import subprocess_database_url

    loaded = modules_loaded_after(
        "import django; django.setup(); from movies import selectors; "
        "selectors.movie_catalogue(); selectors.ratings_for_training()",
        {"DATABASE_URL": subprocess_database_url()},
    )
    assert "torch" not in loaded and "dgl" not in loaded


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
