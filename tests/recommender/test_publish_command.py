"""manage.py publish_embeddings (recommender/management/commands/publish_embeddings.py): the latest run goes
live once."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from recommender import serving
from tests.conftest import requires_milvus

pytestmark = pytest.mark.django_db


@requires_milvus
def test_the_publish_command_makes_the_latest_run_live_once(store, trained) -> None:
    out = StringIO()
    call_command("publish_embeddings", stdout=out)
    assert f"Run {trained.id} is live as " in out.getvalue()
    assert serving.live_run().id == trained.id
    again = StringIO()
    call_command("publish_embeddings", "--if-needed", stdout=again)
    assert again.getvalue().strip() == f"Run {trained.id} is already live."
    with pytest.raises(CommandError, match="no succeeded training run"):
        call_command("publish_embeddings", str(trained.id + 100), stdout=StringIO())
