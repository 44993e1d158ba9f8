"""Typed readers for settings that come from the environment."""

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_bool(name: str, default: bool = False) -> bool:
    """true/false, yes/no, on/off or 1/0; anything else (DJANGO_PRODUCTION=ture) is refused, not read as False."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be true or false (also yes/no, on/off, 1/0), got {value!r}")
    return text in _TRUE


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ValueError(f"{name} must be an integer, got {value!r}") from error


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def database_from_url(url: str, base_dir: Path) -> dict[str, object]:
    """A Django DATABASES entry from `sqlite:///path` or `mysql://user:pass@host:port/name`."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        # sqlite:///relative.db is relative to the project, sqlite:////abs.db is absolute.
        name = path[1:] if path.startswith("/") and not path.startswith("//") else path[1:]
        name_path = Path(name) if Path(name).is_absolute() else base_dir / name
        name_path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(name_path),
            # IMMEDIATE transactions and WAL let the web and worker processes write without "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
            # A file, not memory, so that subprocesses started by tests share the test database.
            "TEST": {"NAME": str(name_path.with_name("test_" + name_path.name))},
        }
    if parsed.scheme in {"mysql", "mariadb"}:
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "127.0.0.1",
            "PORT": str(parsed.port or 3306),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'",
                "isolation_level": "read committed",
                # A hung server fails a query instead of holding a page until gunicorn kills the worker.
                "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT_S", 5),
                "read_timeout": env_int("DATABASE_READ_TIMEOUT_S", 20),
                "write_timeout": env_int("DATABASE_WRITE_TIMEOUT_S", 20),
                # Off explicitly (MariaDB's client library allows it by default): only import_movielens's own
                # connection turns it on (movies.importing.local_infile_connection), so no web or worker
                # query can ever read the machine's files.
                "local_infile": 0,
                **options,
            },
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    raise ValueError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use sqlite:// or mysql://)")


_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def unsafe_bind_reasons(binds: list[str], environ: dict[str, str]) -> list[str]:
    """Why serving on these gunicorn binds would be unsafe: a non-loopback address with the development
    defaults (the public fallback secret key, cookies without Secure, DEBUG). Empty when it is fine."""
    public = [
        b
        for b in binds
        if not b.startswith(("unix:", "fd://"))
        and b.rsplit(":", 1)[0] not in _LOOPBACK_HOSTS
        and not b.rsplit(":", 1)[0].startswith("127.")
    ]
    if not public:
        return []
    reasons = []
    if not environ.get("DJANGO_SECRET_KEY"):
        reasons.append("DJANGO_SECRET_KEY is empty, so sessions are signed with the public development key")
    if environ.get("DJANGO_PRODUCTION", "").strip().lower() not in _TRUE:
        reasons.append(
            "DJANGO_PRODUCTION is not true, so session and CSRF cookies travel without Secure and "
            "there is no HTTPS redirect or HSTS"
        )
    if environ.get("DJANGO_DEBUG", "").strip().lower() in _TRUE:
        reasons.append("DJANGO_DEBUG is true, so error pages show settings and code to anyone")
    return [f"binding {', '.join(public)}: {reason}" for reason in reasons]
