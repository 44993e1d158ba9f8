"""The production shape: docker-compose.yml, the Dockerfile and gunicorn.conf.py agree with the code and .env.example.

No Docker engine runs here, so the compose file is checked by reading it; gunicorn runs for real.
Cross-cutting: the deployment files against the code, not one module."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = {"migrate", "web", "worker-training", "worker-default", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def documented_variables() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def test_compose_has_the_production_shape(compose: dict) -> None:
    services = compose["services"]
    assert {"mysql", "redis", "milvus", *APP_SERVICES} <= set(services)
    assert [name for name, s in services.items() if "beat" in s.get("command", [])] == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    training = services["worker-training"]["command"]
    assert training[training.index("-Q") + 1] == "training" and training[training.index("--concurrency") + 1] == "1"
    assert "--max-tasks-per-child" in training
    assert services["worker-default"]["command"][services["worker-default"]["command"].index("-Q") + 1] == "default"
    assert services["web"]["command"][:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert int(re.sub(r"\$\{WEB_CONCURRENCY:-(\d+)\}", r"\1", services["web"]["environment"]["WEB_CONCURRENCY"])) > 1


def test_every_app_service_runs_the_one_image_against_the_real_backends(compose: dict) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        assert service["build"] == "." and service["image"] == "recsite:latest", name
        assert env["DATABASE_URL"].startswith("mysql://") and "@mysql:3306/" in env["DATABASE_URL"], name
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/"), name
        assert env["MILVUS_URI"] == "http://milvus:19530" and env["DJANGO_PRODUCTION"] == "true", name
        assert {"mysql", "redis", "milvus"} <= set(service["depends_on"]), name
        assert "artifacts:/var/lib/recsite/artifacts" in service["volumes"], (
            name
        )  # the default worker embeds new movies


def test_compose_environment_is_documented_in_env_example(compose: dict) -> None:
    documented = documented_variables()
    used = set()
    for name in APP_SERVICES:
        used |= set(compose["services"][name]["environment"])
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}]", text)) - {"MYSQL_PASSWORD"}  # the MySQL image's own
    assert used <= documented, sorted(used - documented)
    assert interpolated <= documented, sorted(interpolated - documented)
    secrets = re.findall(r"(DJANGO_SECRET_KEY|MYSQL_PASSWORD|DJANGO_SUPERUSER_PASSWORD): (\S+)", text)
    assert secrets and all(value.startswith("${") and ":?" in value for _, value in secrets)  # no default secret


def test_backends_have_health_checks_and_the_app_waits_for_them(compose: dict) -> None:
    services = compose["services"]
    for name in ("mysql", "redis", "milvus", "web"):
        assert services[name]["healthcheck"]["test"], name
    assert "/health/" in " ".join(services["web"]["healthcheck"]["test"])
    for name in APP_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert all(
            services[name]["depends_on"][b] == {"condition": "service_healthy"} for b in ("mysql", "redis", "milvus")
        )


def test_dockerfile_builds_what_compose_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    assert "libmariadb-dev" in dockerfile and "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile and re.search(r"^USER (?!root)", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(90)
def test_gunicorn_serves_with_its_config_and_logs_json(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "LOG_FORMAT": "json",
        "RECSITE_VAR_DIR": str(tmp_path),
    }
    log = open(tmp_path / "gunicorn.log", "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "recsite.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live/", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "gunicorn.access" and line["path"] == "/health/live/"]
    assert access and access[-1]["status"] == 200 and access[-1]["method"] == "GET"
    assert isinstance(access[-1]["duration_ms"], int)
    booted = [line for line in lines if line["logger"] == "gunicorn.error" and "Booting worker" in line["message"]]
    assert len(booted) == 2 and all({"time", "level", "pid"} <= set(line) for line in booted)


def test_compose_publishes_the_web_on_loopback_and_trusts_only_its_proxy(compose: dict) -> None:
    web = compose["services"]["web"]
    assert all(str(port).startswith("127.0.0.1:") for port in web["ports"]), web["ports"]
    gateway = compose["networks"]["default"]["ipam"]["config"][0]["gateway"]
    for name in ("GUNICORN_FORWARDED_ALLOW_IPS", "TRUSTED_PROXIES"):
        value = web["environment"][name]
        assert "*" not in value and gateway in value, (name, value)


def test_django_never_trusts_forwarded_proto_by_itself() -> None:
    env = {**os.environ, "DJANGO_PRODUCTION": "true", "DJANGO_SECRET_KEY": "k" * 60}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']="
            "'recsite.settings'; django.setup(); from django.conf import settings; "
            "print(settings.SECURE_PROXY_SSL_HEADER)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip().splitlines()[-1] == "None", done.stdout + done.stderr


@pytest.mark.parametrize(
    "bind, env, refused",
    [
        ("0.0.0.0:8000", {}, True),
        ("0.0.0.0:8000", {"DJANGO_PRODUCTION": "true", "DJANGO_SECRET_KEY": "k" * 60}, False),
        ("0.0.0.0:8000", {"DJANGO_PRODUCTION": "true", "DJANGO_SECRET_KEY": "k" * 60, "DJANGO_DEBUG": "true"}, True),
        ("127.0.0.1:8000", {}, False),
        ("[::1]:8000", {}, False),
        ("unix:/run/recsite.sock", {}, False),
    ],
)
def test_a_public_bind_with_development_defaults_is_refused(bind: str, env: dict, refused: bool) -> None:
    from recsite.env import unsafe_bind_reasons

    assert bool(unsafe_bind_reasons([bind], env)) is refused


@pytest.mark.timeout(60)
def test_gunicorn_refuses_to_serve_publicly_with_development_defaults(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in {"DJANGO_SECRET_KEY", "DJANGO_PRODUCTION"}}
    env.update({"GUNICORN_BIND": f"0.0.0.0:{free_port()}", "WEB_CONCURRENCY": "1", "RECSITE_VAR_DIR": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "recsite.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode != 0
    assert "refusing to serve" in done.stderr and "DJANGO_SECRET_KEY is empty" in done.stderr


@pytest.mark.django_db
def test_the_containers_own_health_probe_passes_in_production_shape(client: object, settings: object) -> None:
    settings.ALLOWED_HOSTS = ["movies.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    probe = {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"}  # what compose's healthcheck sends
    assert client.get("/health/live/", **probe).status_code == 200
    assert client.get("/health/", **probe).status_code == 200
    outside = client.get("/health/", REMOTE_ADDR="198.51.100.4", HTTP_HOST="127.0.0.1:8000")
    assert outside.status_code == 400  # anyone else still meets host validation
    assert client.get("/", **probe).status_code == 400  # and only the probes are exempt


def test_every_task_has_a_hard_limit_the_broker_outlasts() -> None:
    from django.conf import settings

    from recsite.celery import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.startswith("recommender.")}
    assert {"recommender.tasks.train_model", "recommender.tasks.publish_embeddings"} <= set(ours)
    for name, task in ours.items():
        limit = task.time_limit or app.conf.task_time_limit
        assert limit and limit < settings.BROKER_VISIBILITY_TIMEOUT_S, (name, limit)
    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == settings.BROKER_VISIBILITY_TIMEOUT_S


def test_database_connections_have_timeouts() -> None:
    from recsite.env import database_from_url

    options = database_from_url("mysql://u:p@db:3306/recsite", ROOT)["OPTIONS"]
    assert options["connect_timeout"] > 0 and options["read_timeout"] > 0 and options["write_timeout"] > 0
    assert options["read_timeout"] < 30, "below gunicorn's worker timeout, so a hung query fails the page first"
    assert options["local_infile"] == 0
