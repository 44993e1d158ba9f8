"""movies/download.py: a MovieLens release fetched over HTTP, checked against its pinned or published checksum,
bounded in size and time, through manage.py import_movielens --dataset and directly."""

import hashlib
import http.server
import threading
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from movies.models import Movie, Rating


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
