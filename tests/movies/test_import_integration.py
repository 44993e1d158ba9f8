"""Import faults that need a real database server and real processes (I-6 to I-9, I-12)."""

import hashlib
import http.server
import signal
import threading
import time
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import NotSupportedError, OperationalError, connection
from django.test import override_settings

from movies.models import Movie, Rating
from tests.conftest import manage, requires_mysql


def write_ratings_dataset(directory: Path, num_users: int, num_movies: int, ratings_per_user: int) -> int:
    """A ml-latest-small-shaped folder with predictable ratings; returns the number of ratings."""
    directory.mkdir(parents=True, exist_ok=True)
    movies = ["movieId,title,genres"] + [
        f"{m},Generated Movie {m} ({1950 + m % 70}),Drama" for m in range(1, num_movies + 1)
    ]
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
        call_command(
            "import_movielens",
            str(tmp_path / "ml-latest-small"),
            "--batch-size",
            "20000",
            "--no-progress",
            stdout=StringIO(),
        )
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
    (site / "ml-1m.zip.md5").write_text(f"MD5 (ml-1m.zip) = {digest}\n")  # BSD form; GNU's is "<hex>  name"
    (site / "ml-latest-small.zip").write_bytes((site / "ml-1m.zip").read_bytes())
    (site / "ml-latest-small.zip.md5").write_text("0" * 32 + "  ml-latest-small.zip\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.django_db
def test_download_verifies_checksum_then_imports(
    dataset_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movies import download

    monkeypatch.setattr(download, "PINNED_MD5", {})  # the fixture stands in for the real ml-1m zip
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
def test_a_pinned_release_is_checked_against_its_pin_not_the_published_md5(dataset_server: str, tmp_path: Path) -> None:
    with override_settings(MOVIELENS_DOWNLOAD_URL=dataset_server, MOVIELENS_CACHE_DIR=tmp_path / "cache"):
        with pytest.raises(CommandError, match="checksum mismatch.*c4d9eecfca2ab87c1945afe126590906"):
            call_command("import_movielens", "--dataset", "ml-1m", "--no-progress", stdout=StringIO())
    assert Movie.objects.count() == 0


def test_downloads_are_bounded_in_size_and_total_time(
    dataset_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movies import download

    monkeypatch.setattr(download, "PINNED_MD5", {})
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 100)
    with pytest.raises(download.DownloadError, match="over the 100-byte limit"):
        download.fetch_dataset("ml-1m", dataset_server, tmp_path / "a")
    assert not list((tmp_path / "a").glob("*.part")) and not list((tmp_path / "a").glob("*.zip"))
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 1 << 30)
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 10)
    with pytest.raises(download.DownloadError, match="would unpack"):
        download.fetch_dataset("ml-1m", dataset_server, tmp_path / "b")
    assert not (tmp_path / "b" / "ml-1m").exists()
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 1 << 30)
    clock = iter(range(0, 10_000, 5000))  # every read looks 5000 s later than the last
    monkeypatch.setattr(download.time, "monotonic", lambda: next(clock))
    with pytest.raises(download.DownloadError, match="took longer than"):
        download.fetch_dataset("ml-1m", dataset_server, tmp_path / "c")


def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    from movies import download

    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("ml-1m/ratings.dat", b"0" * (50 << 20))
    with pytest.raises(download.DownloadError, match="refusing"):
        download._unpack(tmp_path / "ml-1m.zip", tmp_path, "ml-1m")
    assert not (tmp_path / "ml-1m").exists()


@pytest.mark.django_db
def test_download_without_network_says_how_to_import_offline(tmp_path: Path) -> None:
    with override_settings(MOVIELENS_DOWNLOAD_URL="http://127.0.0.1:9", MOVIELENS_CACHE_DIR=tmp_path / "cache"):
        with pytest.raises(CommandError, match="cannot download .*import_movielens PATH"):
            call_command("import_movielens", "--dataset", "ml-1m", "--no-progress", stdout=StringIO())


@requires_mysql
@pytest.mark.django_db
def test_ordinary_connections_cannot_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.tsv"
    secret.write_text("1\t2\n")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE probe (a INT, b INT)")
        with pytest.raises((OperationalError, NotSupportedError)):
            cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE probe", [str(secret)])
    assert connection.settings_dict["OPTIONS"]["local_infile"] == 0


@requires_mysql
@pytest.mark.django_db(transaction=True)
def test_the_import_command_alone_stages_with_load_data_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from movies import importing

    expected = write_ratings_dataset(tmp_path / "ml-latest-small", num_users=20, num_movies=30, ratings_per_user=10)
    used = []
    original = importing._load_data_infile
    monkeypatch.setattr(
        importing, "_load_data_infile", lambda cursor, rows: used.append(original(cursor, rows)) or used[-1]
    )
    call_command("import_movielens", str(tmp_path / "ml-latest-small"), "--no-progress", stdout=StringIO())
    assert used and all(used), "the import's connection should allow LOAD DATA LOCAL"
    assert Rating.objects.count() == expected
    assert connection.settings_dict["OPTIONS"]["local_infile"] == 0, "and the option ends with the import"
