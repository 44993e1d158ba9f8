"""Import faults that need a real database server and real processes (I-6 to I-9, I-12)."""
import http.server
import hashlib
import shutil
import signal
import threading
import time
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from movies.models import Movie, Rating
from tests.conftest import manage, requires_mysql


def write_ratings_dataset(directory: Path, num_users: int, num_movies: int, ratings_per_user: int) -> int:
    """A ml-latest-small-shaped folder with predictable ratings; returns the number of ratings."""
    directory.mkdir(parents=True, exist_ok=True)
    movies = ["movieId,title,genres"] + [f"{m},Generated Movie {m} ({1950 + m % 70}),Drama" for m in range(1, num_movies + 1)]
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, num_users + 1):
        for k in range(ratings_per_user):
            movie = (user * 7 + k * 13) % num_movies + 1
            lines.append(f"{user},{movie},{(user + k) % 10 / 2 + 0.5},{1_000_000_000 + user * 1000 + k}")
    unique = {tuple(line.split(",")[:2]) for line in lines[1:]}
    (directory / "ratings.csv").write_text("\n".join(lines) + "\n")
    return len(unique)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_import_killed_mid_way_then_rerun_equals_a_clean_import(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=300, num_movies=400, ratings_per_user=60)
    process = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "500", "--no-progress")
    deadline = time.monotonic() + 60
    while Rating.objects.count() < 2000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = Rating.objects.count()
    assert 0 < partial < expected
    assert partial % 500 == 0, "a killed import must leave only whole batches"
    rerun = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "500", "--no-progress")
    out, err = rerun.communicate(timeout=90)
    assert rerun.returncode == 0, err
    assert Rating.objects.count() == expected
    assert Movie.objects.count() == 400
    assert f"ratings  {expected - partial} new, 0 changed, {partial} unchanged" in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_readers_never_see_half_a_batch(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=200, num_movies=300, ratings_per_user=50)
    process = manage("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "250", "--no-progress")
    seen = set()
    while process.poll() is None:
        seen.add(Rating.objects.count())
        time.sleep(0.01)
    assert process.returncode == 0, process.stderr.read()
    seen.add(Rating.objects.count())
    assert len(seen) > 2, "the reader should have watched the import progress"
    assert all(count % 250 == 0 or count == expected for count in seen), sorted(seen)


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_import_fits_a_small_max_allowed_packet(tmp_path: Path) -> None:
    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=100, num_movies=500, ratings_per_user=200)
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        (original,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_allowed_packet = 1048576")
    connection.close()  # the new limit applies to new sessions
    try:
        call_command("import_movielens", str(tmp_path / "ml-latest-small"), "--batch-size", "20000",
                     "--no-progress", stdout=StringIO())
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.max_allowed_packet")
            assert cursor.fetchone()[0] == 1048576
        assert Rating.objects.count() == expected
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_allowed_packet = {int(original)}")
        connection.close()


@requires_mysql
@pytest.mark.django_db
def test_four_byte_utf8_title_round_trips_on_mariadb(fixtures_dir: Path) -> None:
    call_command("import_movielens", str(fixtures_dir / "ml-latest-small"), "--no-progress", stdout=StringIO())
    assert Movie.objects.get(movielens_id=5).title == "Skyline 🚀 (2019)"
    assert Movie.objects.filter(title__contains="🚀").count() == 1


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dataset_server(tmp_path: Path, fixtures_dir: Path) -> str:
    """A loopback HTTP server publishing ml-1m.zip and its .md5, as GroupLens lays them out."""
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "ml-1m.zip", "w") as bundle:
        for path in (fixtures_dir / "ml-1m").iterdir():
            bundle.write(path, f"ml-1m/{path.name}")
    digest = hashlib.md5((site / "ml-1m.zip").read_bytes()).hexdigest()
    (site / "ml-1m.zip.md5").write_text(f"{digest}  ml-1m.zip\n")
    (site / "ml-latest-small.zip").write_bytes((site / "ml-1m.zip").read_bytes())
    (site / "ml-latest-small.zip.md5").write_text("0" * 32 + "  ml-latest-small.zip\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.django_db
def test_download_verifies_checksum_then_imports(dataset_server: str, tmp_path: Path) -> None:
    with override_settings(MOVIELENS_DOWNLOAD_URL=dataset_server, MOVIELENS_CACHE_DIR=tmp_path / "cache"):
        call_command("import_movielens", "--dataset", "ml-1m", "--no-progress", stdout=StringIO())
    assert Rating.objects.count() == 6
    assert (tmp_path / "cache/ml-1m/.verified").is_file()


@pytest.mark.django_db
def test_download_with_wrong_checksum_is_refused(dataset_server: str, tmp_path: Path) -> None:
    with override_settings(MOVIELENS_DOWNLOAD_URL=dataset_server, MOVIELENS_CACHE_DIR=tmp_path / "cache"):
        with pytest.raises(CommandError, match="checksum mismatch"):
            call_command("import_movielens", "--dataset", "ml-latest-small", "--no-progress", stdout=StringIO())
    assert not (tmp_path / "cache/ml-latest-small.zip").exists()
    assert Movie.objects.count() == 0


@pytest.mark.django_db
def test_download_without_network_says_how_to_import_offline(tmp_path: Path) -> None:
    with override_settings(MOVIELENS_DOWNLOAD_URL="http://127.0.0.1:9", MOVIELENS_CACHE_DIR=tmp_path / "cache"):
        with pytest.raises(CommandError, match="cannot download .*import_movielens PATH"):
            call_command("import_movielens", "--dataset", "ml-1m", "--no-progress", stdout=StringIO())
