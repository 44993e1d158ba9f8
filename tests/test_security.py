"""Deployment settings, login lockout and the content security policy (W-1, W-7, W-10)."""
import os
import subprocess
import sys
import time

import pytest
from django.test import Client

from tests.conftest import ROOT

PRODUCTION_ENV = {"DJANGO_PRODUCTION": "true", "DJANGO_SECRET_KEY": "a" * 20 + "-Zq8!x" + "b" * 30 + "-k2#Lm",
                  "DJANGO_ALLOWED_HOSTS": "reel.example.org", "DJANGO_DEBUG": "false"}


def test_deploy_checks_pass_with_production_settings() -> None:
    env = {**os.environ, **PRODUCTION_ENV}
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_production_refuses_to_start_without_a_secret() -> None:
    env = {**os.environ, **PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "DJANGO_SECRET_KEY is empty" in done.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("login_url", ["/login/", "/admin/login/"])
def test_five_wrong_passwords_lock_out_then_cool_off(login_url: str, settings: object) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model

    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    get_user_model().objects.create_user("erin", password="Right-Password-42", is_staff=True)
    client = Client()
    for _ in range(5):
        client.post(login_url, {"username": "erin", "password": "wrong"})
    locked = client.post(login_url, {"username": "erin", "password": "Right-Password-42"})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    time.sleep(2.2)
    assert client.post(login_url, {"username": "erin", "password": "Right-Password-42"}).status_code == 302


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_script(client: Client) -> None:
    policy = client.get("/")["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'self'" in script_src and "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert "frame-ancestors 'none'" in policy
