"""manage.py ensure_staff_account (movies/management/commands/ensure_staff_account.py): the staff password,
given or generated, never reaches the logs."""

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@override_settings(STAFF_USERNAME="boss", STAFF_PASSWORD="Given-Secret-Password-123")  # DJANGO_SUPERUSER_*
def test_a_given_staff_password_is_never_printed() -> None:
    for out in (io.StringIO(), _Terminal()):
        get_user_model().objects.filter(username="boss").delete()
        call_command("ensure_staff_account", stdout=out)
        assert "Given-Secret-Password-123" not in out.getvalue() and "boss" in out.getvalue()
    assert get_user_model().objects.get(username="boss").check_password("Given-Secret-Password-123")


@override_settings(STAFF_USERNAME="boss", STAFF_PASSWORD="")
def test_a_generated_password_shows_once_on_a_terminal_and_never_in_logs(tmp_path: Path) -> None:
    log = io.StringIO()
    with override_settings(VAR_DIR=tmp_path):
        call_command("ensure_staff_account", stdout=log)
    saved = tmp_path / "staff-password.txt"
    password = saved.read_text().strip()
    assert len(password) == 20 and password not in log.getvalue() and str(saved) in log.getvalue()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert get_user_model().objects.get(username="boss").check_password(password)
    get_user_model().objects.filter(username="boss").delete()
    terminal = _Terminal()
    with override_settings(VAR_DIR=tmp_path / "other"):
        call_command("ensure_staff_account", stdout=terminal)
    shown = terminal.getvalue().split(" / ")[1].split()[0]
    assert get_user_model().objects.get(username="boss").check_password(shown)
    assert not (tmp_path / "other" / "staff-password.txt").exists()
    again = _Terminal()
    call_command("ensure_staff_account", stdout=again)
    assert shown not in again.getvalue()  # shown once
