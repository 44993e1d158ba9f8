"""Named fixtures shared by the whole suite."""

import os
import signal
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


requires_mysql = pytest.mark.mysql


def subprocess_database_url() -> str:
    """A DATABASE_URL that points a subprocess at the test database this process is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"mysql://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def manage(*args: str, **kwargs: object) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def modules_loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (what an import drags in)."""
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


@pytest.fixture
def tiny_interactions() -> "TinyData":
    """5 users, 8 movies, no database: two taste clusters (movies 1-4 and 5-8) and one unrated movie."""
    import numpy as np

    from recommender.ml.data import Catalogue, Interactions

    ratings = [  # (user, movie, stars, time)
        (1, 1, 5.0, 10),
        (1, 2, 4.5, 11),
        (1, 3, 4.0, 12),
        (1, 4, 2.0, 13),
        (2, 1, 4.0, 10),
        (2, 2, 5.0, 12),
        (2, 3, 3.5, 14),
        (3, 5, 5.0, 10),
        (3, 6, 4.0, 11),
        (3, 7, 4.5, 12),
        (4, 5, 3.0, 10),
        (4, 6, 5.0, 11),
        (4, 7, 4.0, 12),
        (4, 1, 1.0, 13),
        (5, 2, 4.0, 10),
        (5, 3, 5.0, 11),
        (5, 1, 4.5, 12),
    ]
    users, movies, stars, times = (np.array(column) for column in zip(*ratings))
    interactions = Interactions(
        users.astype(np.int64), (movies * 10).astype(np.int64), stars.astype(np.float32), times.astype(np.int64)
    )
    catalogue = Catalogue(
        np.arange(1, 9, dtype=np.int64) * 10,
        [f"Robot Garden {i} ({1990 + i})" for i in range(1, 5)] + [f"Quiet Harbour {i}" for i in range(5, 9)],
        [1990 + i for i in range(1, 5)] + [None] * 4,
        [["Animation"]] * 4 + [["Drama", "Romance"]] * 4,
    )
    return TinyData(interactions, catalogue)


class TinyData:
    def __init__(self, interactions: object, catalogue: object) -> None:
        self.interactions = interactions
        self.catalogue = catalogue


def milvus_lite_binary() -> str:
    return str(Path(sys.executable).parent / "milvus-lite")


class MilvusLiteServer:
    """A private milvus-lite server a test can stop, freeze and restart."""

    def __init__(self, data_dir: Path) -> None:
        import socket

        self.data_dir = data_dir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import time

        from pymilvus import MilvusClient

        self.process = subprocess.Popen(
            [
                milvus_lite_binary(),
                "server",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                MilvusClient(uri=self.uri, timeout=2).get_server_version()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def milvus_server(tmp_path: Path) -> "MilvusLiteServer":
    server = MilvusLiteServer(tmp_path / "milvus")
    server.start()
    yield server
    server.stop()


def shared_milvus_uri() -> str | None:
    """The milvus-lite server scripts/test starts for the run."""
    return os.environ.get("MILVUS_URI") if os.environ.get("MILVUS_LITE_PID") else None


requires_milvus = pytest.mark.milvus


def redis_is_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def chromium_path() -> str | None:
    import shutil

    return shutil.which("chromium")


# Each marker names a real part a test needs; tests with any of them form the integration tier
# (`scripts/test -m "not integration"` is the fast one). Without the part, the test is skipped, saying why.
SERVICES = {
    "mysql": (is_mysql, "needs MariaDB: DATABASE_URL=mysql://root@127.0.0.1:3306/recsite (as .ci/run sets)"),
    "milvus": (lambda: shared_milvus_uri() is not None, "needs the milvus-lite server that scripts/test starts"),
    "redis": (redis_is_up, "needs Redis on 127.0.0.1:6379 (apt-get install redis-server; .ci/run starts it)"),
    "browser": (lambda: chromium_path() is not None, "needs Debian's chromium (apt-get install chromium)"),
}


def pytest_collection_modifyitems(config: object, items: list) -> None:
    available = {name: check() for name, (check, _) in SERVICES.items()}
    for item in items:
        needed = {mark.name for mark in item.iter_markers()} & SERVICES.keys()
        if needed:
            item.add_marker(pytest.mark.integration)
        for name in sorted(needed):
            if not available[name]:
                item.add_marker(pytest.mark.skip(reason=SERVICES[name][1]))
                break


@pytest.fixture
def store() -> "object":
    """A VectorStore on the shared server, under an alias of its own, cleaned up afterwards."""
    import uuid

    from recommender.vector_store import VectorStore

    vector_store = VectorStore(shared_milvus_uri(), timeout=10, alias=f"t{uuid.uuid4().hex[:10]}")
    yield vector_store
    with vector_store._calls("cleanup") as client:
        client.drop_alias(vector_store.alias)
        for name in vector_store.run_collections():
            client.drop_collection(name)


@pytest.fixture
def catalogue_movies(db) -> list:
    """Twelve movies: 1-6 are Animation, 7-12 Drama; one title carries HTML to prove escaping."""
    from movies.models import Genre, Movie

    animation, drama = Genre.objects.create(name="Animation"), Genre.objects.create(name="Drama")
    movies = []
    for i in range(1, 13):
        title = f"Robot Garden {i} ({1990 + i})" if i != 12 else '<script>alert("x")</script> & "Quotes" (2001)'
        movie = Movie.objects.create(title=title, year=1990 + i, movielens_id=100 + i)
        movie.genres.add(animation if i <= 6 else drama)
        movies.append(movie)
    return movies


@pytest.fixture
def alice(catalogue_movies: list) -> object:
    """Has ratings: loves the first three Animation movies, dislikes one Drama."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from movies.models import Rating
    from movies.stats import refresh_movie_stats

    user = get_user_model().objects.create_user("alice", password="a-long-password-1")
    for k, (movie, stars) in enumerate([(0, "5"), (1, "4.5"), (2, "4"), (7, "1")]):
        Rating.objects.create(
            user=user,
            movie=catalogue_movies[movie],
            stars=Decimal(stars),
            rated_at=datetime(2024, 1, 1 + k, tzinfo=UTC),
        )
    refresh_movie_stats()  # written with the ORM, as a data load would, not through rate_movie
    return user


@pytest.fixture
def bob(db) -> object:
    """No ratings."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("bob", password="a-long-password-2")


@pytest.fixture
def live_embeddings(store, catalogue_movies: list, monkeypatch: pytest.MonkeyPatch) -> object:
    """A succeeded run whose vectors put the Animation movies together and the Drama ones together."""
    import numpy as np

    from recommender import serving
    from recommender.models import TrainingRun
    from recommender.vector_store import MovieVectors

    run = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED, config={"scoring": {"neighbors_per_item": 10, "min_stars": 3.5}}
    )
    vectors = np.zeros((12, 4), dtype=np.float32)
    for i in range(12):
        vectors[i, 0 if i < 6 else 1] = 1.0
        vectors[i, 2 + i % 2] = 0.3 + 0.02 * i
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.publish(
        run.id,
        MovieVectors(
            np.array([m.id for m in catalogue_movies]),
            vectors,
            np.array([m.year for m in catalogue_movies], dtype=np.int32),
            [[g.name for g in m.genres.all()] for m in catalogue_movies],
        ),
    )
    monkeypatch.setattr(serving, "_store", store)
    serving.forget_live_run()
    yield run
    serving.forget_live_run()


@pytest.fixture
def co_raters(catalogue_movies: list) -> None:
    """Other people who rate the Animation movies together and the Drama ones together, and the co-rated
    lists computed from them: picks and similar movies without a model."""
    from datetime import UTC, datetime

    from django.contrib.auth import get_user_model

    from movies import services
    from movies.models import Rating

    for n, group in enumerate([[0, 1, 2, 3, 4], [1, 2, 3, 5], [0, 3, 4, 5], [6, 7, 8, 9], [7, 8, 10, 11]]):
        user = get_user_model().objects.create_user(f"rater{n}", password="a-long-password-9")
        for i in group:
            Rating.objects.create(
                user=user, movie=catalogue_movies[i], stars=4, rated_at=datetime(2024, 2, 1, tzinfo=UTC)
            )
    services.refresh_co_rated()


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    """Cached popular lists hold ids of the previous test's rows."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def impressions_written_on_flush(settings: object) -> None:
    """The impression log without its writer thread: rows wait on this process's queue for
    `impressions.flush()` in the test's own connection (a thread's connection would commit outside the test's
    transaction). The writer thread itself is tested in tests/recommender/test_impressions.py."""
    from recommender import impressions

    settings.IMPRESSION_FLUSH_MS = 0
    impressions._log = None
    yield
    impressions._log = None
