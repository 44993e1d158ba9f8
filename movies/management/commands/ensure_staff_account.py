"""manage.py ensure_staff_account: make sure an admin login exists and say how to use it."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

PASSWORD_FILE = "staff-password.txt"


class Command(BaseCommand):
    help = (
        "Create the staff superuser named by DJANGO_SUPERUSER_USERNAME (default 'admin') if missing, with "
        "DJANGO_SUPERUSER_PASSWORD or a generated password, and print where to log in. A given password is "
        "never printed; a generated one is shown once on a terminal, and otherwise written to "
        f"RECSITE_VAR_DIR/{PASSWORD_FILE} (owner-only) instead of the log."
    )

    def handle(self, *args: object, **options: object) -> None:
        username, password, email = settings.STAFF_USERNAME, settings.STAFF_PASSWORD, settings.STAFF_EMAIL
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Staff login: {username} (existing account; password unchanged)")
            return
        if password:
            users.create_superuser(username=username, email=email, password=password)
            self.stdout.write(f"Staff login: {username} (password from DJANGO_SUPERUSER_PASSWORD)")
            return
        password = get_random_string(20)
        users.create_superuser(username=username, email=email, password=password)
        if self.stdout.isatty():
            self.stdout.write(f"Staff login: {username} / {password} (generated, shown once)")
            return
        path = settings.VAR_DIR / PASSWORD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        self.stdout.write(
            f"Staff login: {username} (generated password in {path}, readable by this user only; not written to logs)"
        )
