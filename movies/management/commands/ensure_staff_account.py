"""manage.py ensure_staff_account: make sure an admin login exists and say how to use it."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from recsite.env import env_str


class Command(BaseCommand):
    help = ("Create the staff superuser named by DJANGO_SUPERUSER_USERNAME (default 'admin') if missing, with "
            "DJANGO_SUPERUSER_PASSWORD or a generated password, and print where to log in.")

    def handle(self, *args: object, **options: object) -> None:
        username = env_str("DJANGO_SUPERUSER_USERNAME", "admin")
        password = env_str("DJANGO_SUPERUSER_PASSWORD")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Staff login: {username} (existing account; password unchanged)")
            return
        generated = not password
        password = password or get_random_string(20)
        users.create_superuser(username=username, email=env_str("DJANGO_SUPERUSER_EMAIL"), password=password)
        source = "generated, shown once" if generated else "from DJANGO_SUPERUSER_PASSWORD"
        self.stdout.write(f"Staff login: {username} / {password} ({source})")
