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


@pytest.fixture
def tiny_interactions() -> "TinyData":
    """5 users, 8 movies, no database: two taste clusters (movies 1-4 and 5-8) and one unrated movie."""
    import numpy as np

    from recommender.experiment import Catalogue
    from recommender.graph import Interactions

    ratings = [  # (user, movie, stars, time)
        (1, 1, 5.0, 10), (1, 2, 4.5, 11), (1, 3, 4.0, 12), (1, 4, 2.0, 13),
        (2, 1, 4.0, 10), (2, 2, 5.0, 12), (2, 3, 3.5, 14),
        (3, 5, 5.0, 10), (3, 6, 4.0, 11), (3, 7, 4.5, 12),
        (4, 5, 3.0, 10), (4, 6, 5.0, 11), (4, 7, 4.0, 12), (4, 1, 1.0, 13),
        (5, 2, 4.0, 10), (5, 3, 5.0, 11), (5, 1, 4.5, 12),
    ]
    users, movies, stars, times = (np.array(column) for column in zip(*ratings))
    interactions = Interactions(users.astype(np.int64), (movies * 10).astype(np.int64), stars.astype(np.float32),
                                times.astype(np.int64))
    catalogue = Catalogue(np.arange(1, 9, dtype=np.int64) * 10,
                          [f"Robot Garden {i} ({1990 + i})" for i in range(1, 5)] + [f"Quiet Harbour {i}" for i in range(5, 9)],
                          [1990 + i for i in range(1, 5)] + [None] * 4,
                          [["Animation"]] * 4 + [["Drama", "Romance"]] * 4)
    return TinyData(interactions, catalogue)


class TinyData:
    def __init__(self, interactions: object, catalogue: object) -> None:
        self.interactions = interactions
        self.catalogue = catalogue
