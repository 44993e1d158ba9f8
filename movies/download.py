"""Fetches an official MovieLens zip into the cache directory and checks it before unpacking."""

import hashlib
import re
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

# Digests of the releases that never change; for the others (ml-latest, ml-latest-small, which GroupLens
# refreshes) the .md5 published beside each zip is used.
PINNED_MD5 = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}
TIMEOUT_S = 30  # any one connect or read
TOTAL_TIMEOUT_S = 3600  # the whole download (ml-32m is about 240 MB)
MAX_DOWNLOAD_BYTES = 2 << 30  # the largest release's zip is well under 1 GB
MAX_UNPACKED_BYTES = 8 << 30  # and its files well under 2 GB
MAX_COMPRESSION_RATIO = 100  # MovieLens text compresses about 5:1; far more is a zip bomb
_MD5 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32}(?![0-9a-fA-F])")


class DownloadError(Exception):
    """The data set could not be fetched or did not match its checksum."""


def fetch_dataset(name: str, base_url: str, cache_dir: Path) -> Path:
    """The unpacked data set's directory, downloading and verifying it only when not cached."""
    target = cache_dir / name
    if (target / ".verified").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"{name}.zip"
    url = f"{base_url.rstrip('/')}/{name}.zip"
    expected = PINNED_MD5.get(name) or _published_md5(url)
    _download(url, archive)
    actual = _md5(archive)
    if actual != expected:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch (expected md5 {expected}, got {actual}); the file was removed")
    _unpack(archive, cache_dir, name)
    (target / ".verified").write_text(actual)
    return target


def _published_md5(url: str) -> str:
    """The digest in GNU form ("<hex>  ml-1m.zip") or BSD form ("MD5 (ml-1m.zip) = <hex>")."""
    text = _get(url + ".md5").decode("ascii", "replace")
    found = _MD5.findall(text)
    if len(found) != 1:
        raise DownloadError(f"{url}.md5 does not hold exactly one MD5 digest")
    return found[0].lower()


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read(4096)
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(
            f"cannot download {url} ({error}); without a network, pass the directory "
            f"of an unpacked copy: import_movielens PATH"
        ) from error


def _download(url: str, destination: Path) -> None:
    """Streams to a .part file, bounded in size and in total time (each read also has its own timeout)."""
    partial = destination.with_suffix(".part")
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, partial.open("wb") as out:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > MAX_DOWNLOAD_BYTES:
                raise DownloadError(f"{url} is {declared:,} bytes, over the {MAX_DOWNLOAD_BYTES:,}-byte limit")
            written = 0
            while chunk := response.read(1 << 20):
                written += len(chunk)
                if written > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"{url} is over the {MAX_DOWNLOAD_BYTES:,}-byte limit; stopped")
                if time.monotonic() > deadline:
                    raise DownloadError(f"{url} took longer than {TOTAL_TIMEOUT_S} s; stopped")
                out.write(chunk)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"cannot download {url} ({error}); without a network, pass the directory "
            f"of an unpacked copy: import_movielens PATH"
        ) from error
    partial.replace(destination)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, cache_dir: Path, name: str) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for member in members:
            resolved = (cache_dir / member.filename).resolve()
            if not resolved.is_relative_to(cache_dir.resolve()):
                raise DownloadError(f"{archive}: refusing to unpack {member.filename!r} outside the cache")
            if member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1 << 16):
                raise DownloadError(
                    f"{archive}: {member.filename!r} would unpack {member.file_size:,} bytes from "
                    f"{member.compress_size:,}; refusing (not a MovieLens file)"
                )
        unpacked = sum(member.file_size for member in members)
        if unpacked > MAX_UNPACKED_BYTES:
            raise DownloadError(
                f"{archive} would unpack {unpacked:,} bytes, over the {MAX_UNPACKED_BYTES:,}-byte limit"
            )
        bundle.extractall(cache_dir)
    if not (cache_dir / name).is_dir():
        raise DownloadError(f"{archive} did not contain a {name}/ folder")
