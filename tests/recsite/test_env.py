"""recsite/env.py: every environment variable the code reads is documented in .env.example, and booleans are
read strictly."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_every_env_variable_is_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    used = set()
    for path in [
        *ROOT.glob("recsite/*.py"),
        *ROOT.glob("movies/**/*.py"),
        *ROOT.glob("recommender/**/*.py"),
        ROOT / "gunicorn.conf.py",
    ]:
        used |= set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z0-9_]+)"', path.read_text()))
    for script in ROOT.glob("scripts/*"):
        used |= {name for name in re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", script.read_text()) if name not in {"PYTHON"}}
    assert used and used <= documented, sorted(used - documented)


@pytest.mark.parametrize(
    "value, expected", [("true", True), (" Yes ", True), ("1", True), ("off", False), ("0", False), ("", None)]
)
def test_booleans_read_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool | None) -> None:
    from recsite.env import env_bool

    monkeypatch.setenv("SOME_FLAG", value)
    assert env_bool("SOME_FLAG", default=None) is expected


def test_a_misspelt_boolean_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsite.env import env_bool

    monkeypatch.setenv("DJANGO_PRODUCTION", "ture")
    with pytest.raises(ValueError, match="DJANGO_PRODUCTION must be true or false.*'ture'"):
        env_bool("DJANGO_PRODUCTION")
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_PRODUCTION": "ture"},
        timeout=60,
    )
    assert done.returncode != 0 and "DJANGO_PRODUCTION must be true or false" in done.stderr
