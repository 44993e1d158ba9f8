"""Deployment settings, login lockout and the content security policy (W-1, W-7, W-10).
Cross-cutting: recsite's settings, auth and middleware together, as an attacker meets them."""

import os
import subprocess
import sys
import time

import pytest
from django.test import Client

from tests.conftest import ROOT

PRODUCTION_ENV = {
    "DJANGO_PRODUCTION": "true",
    "DJANGO_SECRET_KEY": "a" * 20 + "-Zq8!x" + "b" * 30 + "-k2#Lm",
    "DJANGO_ALLOWED_HOSTS": "reel.example.org",
    "DJANGO_DEBUG": "false",
}


def test_deploy_checks_pass_with_production_settings() -> None:
    env = {**os.environ, **PRODUCTION_ENV}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
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


def _login(client: Client, username: str, password: str, **meta: str) -> int:
    return client.post("/login/", {"username": username, "password": password}, **meta).status_code


@pytest.mark.django_db
def test_behind_a_trusted_proxy_an_attacker_cannot_lock_the_owner_out(settings: object) -> None:
    from django.contrib.auth import get_user_model

    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    get_user_model().objects.create_user("admin", password="Owner-Password-42", is_staff=True)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(6):
        _login(Client(), "admin", "guess", HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    assert _login(Client(), "admin", "Owner-Password-42", HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy) == 429
    # The owner comes through the same proxy from elsewhere: the pair (admin, owner's address) is untouched.
    assert _login(Client(), "admin", "Owner-Password-42", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy) == 302
    # A forged left-most hop does not help: the proxy appended the address it really saw.
    assert (
        _login(Client(), "admin", "Owner-Password-42", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7", **proxy) == 429
    )


@pytest.mark.django_db
def test_directly_connected_clients_cannot_choose_their_address(settings: object) -> None:
    from django.contrib.auth import get_user_model

    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    get_user_model().objects.create_user("admin", password="Owner-Password-42", is_staff=True)
    for k in range(6):  # a new forged X-Forwarded-For each try: ignored, since the peer is no proxy
        _login(Client(), "admin", "guess", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{k}")
    assert _login(Client(), "admin", "Owner-Password-42", REMOTE_ADDR="198.51.100.7") == 429
    assert _login(Client(), "admin", "Owner-Password-42", REMOTE_ADDR="203.0.113.5") == 302


@pytest.mark.django_db
def test_password_spraying_from_one_address_hits_a_higher_limit(settings: object) -> None:
    from django.contrib.auth import get_user_model

    settings.AXES_ADDRESS_FAILURE_LIMIT = 12
    get_user_model().objects.create_user("zoe", password="Zoe-Password-4242")
    for k in range(12):  # one try each for 12 usernames: no pair reaches 5
        assert _login(Client(), f"user{k}", "Summer2026!", REMOTE_ADDR="198.51.100.9") == 200
    assert _login(Client(), "zoe", "Zoe-Password-4242", REMOTE_ADDR="198.51.100.9") == 429
    assert _login(Client(), "zoe", "Zoe-Password-4242", REMOTE_ADDR="198.51.100.10") == 302
