"""Fetches an official MovieLens zip into the cache directory and checks it before unpacking."""
import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

# Known digests; for the others the .md5 that GroupLens publishes beside each zip is used.
PINNED_MD5 = {"ml-100k": "0e33842e24a9c977be4e0107933c0723"}
TIMEOUT_S = 30


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
    text = _get(url + ".md5").decode("ascii", "replace")
    digest = text.split()[0] if text.split() else ""
    if len(digest) != 32:
        raise DownloadError(f"{url}.md5 does not hold an MD5 digest")
    return digest.lower()


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot download {url} ({error}); without a network, pass the directory "
                            f"of an unpacked copy: import_movielens PATH") from error


def _download(url: str, destination: Path) -> None:
    partial = destination.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url} ({error}); without a network, pass the directory "
                            f"of an unpacked copy: import_movielens PATH") from error
    partial.replace(destination)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, cache_dir: Path, name: str) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            resolved = (cache_dir / member).resolve()
            if not resolved.is_relative_to(cache_dir.resolve()):
                raise DownloadError(f"{archive}: refusing to unpack {member!r} outside the cache")
        bundle.extractall(cache_dir)
    if not (cache_dir / name).is_dir():
        raise DownloadError(f"{archive} did not contain a {name}/ folder")
