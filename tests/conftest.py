"""Named fixtures shared by the whole suite."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def is_mysql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("mysql")


requires_mysql = pytest.mark.skipif(not is_mysql(), reason="needs DATABASE_URL=mysql://... (run by .ci/run)")


def subprocess_database_url() -> str:
    """A DATABASE_URL that points a subprocess at the test database this process is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"mysql://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def manage(*args: str, **kwargs: object) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
