"""web/forms.py: sign-up keeps the names of imported MovieLens users."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["movielens-5", "MovieLens-12", "MOVIELENS-x"])
def test_imported_users_names_are_reserved_at_sign_up(client: Client, name: str) -> None:
    response = client.post(
        "/signup/", {"username": name, "password1": "Stars-and-Popcorn-77", "password2": "Stars-and-Popcorn-77"}
    )
    assert response.status_code == 200 and "kept for imported MovieLens users" in response.content.decode()
    assert not get_user_model().objects.filter(username=name).exists()
