"""manage.py recommend prints the site's recommendations as JSON lines."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import requires_milvus


@requires_milvus
@pytest.mark.django_db
def test_one_json_object_per_user(alice, bob, live_embeddings) -> None:
    out = StringIO()
    call_command("recommend", str(alice.id), str(bob.id), "--k", "3", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["user_id"] for line in lines] == [alice.id, bob.id]
    assert lines[0]["movielens_user_id"] is None and len(lines[0]["recommendations"]) == 3
    first = lines[0]["recommendations"][0]
    assert set(first) == {"movie_id", "movielens_id", "score", "because"} and first["because"]
    assert lines[1]["source"] == "popular"


@pytest.mark.django_db
def test_unknown_user_is_an_error(db) -> None:
    with pytest.raises(CommandError, match="no user with id 424242"):
        call_command("recommend", "424242", stdout=StringIO())
