"""Every environment variable the code reads is documented in .env.example."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_env_variable_is_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    used = set()
    for path in [*ROOT.glob("recsite/*.py"), *ROOT.glob("movies/**/*.py"), *ROOT.glob("recommender/**/*.py"),
                 ROOT / "gunicorn.conf.py"]:
        used |= set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z0-9_]+)"', path.read_text()))
    for script in ROOT.glob("scripts/*"):
        used |= {name for name in re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", script.read_text())
                 if name not in {"PYTHON"}}
    assert used and used <= documented, sorted(used - documented)
