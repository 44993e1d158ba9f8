"""recommender/admin.py: the operator's console in Django admin."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from recommender.models import TrainingRun

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/recommender/trainingrun/"


def staff(username: str, can_retrain: bool) -> Client:
    user = get_user_model().objects.create_user(username, password="x-long-password-9", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_trainingrun"))
    if can_retrain:
        user.user_permissions.add(Permission.objects.get(codename="retrain"))
    client = Client()
    client.force_login(user)
    return client


def test_non_staff_are_sent_to_the_login(client: Client, bob) -> None:
    client.force_login(bob)
    assert client.get(CHANGELIST).status_code == 302


def test_retrain_action_needs_the_permission(db) -> None:
    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    assert "retrain_now" not in staff("viewer", can_retrain=False).get(CHANGELIST).content.decode()
    assert "retrain_now" in staff("operator", can_retrain=True).get(CHANGELIST).content.decode()


def test_retrain_clicked_twice_queues_one_run(db) -> None:
    existing = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    client = staff("operator", can_retrain=True)
    post = {"action": "retrain_now", "_selected_action": [existing.id]}
    first = client.post(CHANGELIST, post, follow=True).content.decode()
    second = client.post(CHANGELIST, post, follow=True).content.decode()
    assert "is queued" in first and "already queued" in second
    assert TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).count() == 1


def test_run_page_shows_curves_and_metrics_beside_baselines(admin_client: Client) -> None:
    history = [
        {
            "epoch": e,
            "loss": 1 / e,
            "seconds": 1.0,
            "batches_per_second": 10.0,
            "validation": {"hr@10": 0.05 * e, "ndcg@10": 0.02 * e},
        }
        for e in (1, 2, 3)
    ]
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        history=history,
        test_metrics={"hr@10": 0.09},
        validation_metrics={"hr@10": 0.12},
        baseline_metrics={"ease": {"validation": {"hr@10": 0.14}, "test": {"hr@10": 0.0965}}},
    )
    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, test_metrics={"hr@10": 0.08})
    page = admin_client.get(f"{CHANGELIST}{run.id}/change/").content.decode()
    assert "Training loss" in page and "0.0965" in page and "0.0900" in page
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "Metric history across training runs" in listing


def test_run_page_says_which_weights_the_run_serves(admin_client: Client) -> None:
    averaged = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, best_epoch=6, averaged_epochs=[4, 6, 9])
    alone = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, best_epoch=3)
    page = admin_client.get(f"{CHANGELIST}{averaged.id}/change/").content.decode()
    assert "the mean of epochs 4, 6 and 9 (validated better than epoch 6)" in page
    assert "epoch 3&#x27;s" in admin_client.get(f"{CHANGELIST}{alone.id}/change/").content.decode()


def test_movie_titles_are_escaped_in_admin(admin_client: Client, catalogue_movies) -> None:
    page = admin_client.get("/admin/movies/movie/?q=Quotes").content.decode()
    assert '<script>alert("x")</script>' not in page and "&lt;script&gt;" in page


def test_make_live_and_roll_back_are_checked_at_once_then_queued_for_a_worker_not_run_in_the_request(
    db, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import outbox, runs

    model = tmp_path / "run.pt"
    model.write_bytes(b"weights")
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, artifact_path=str(model))
    sent = []
    monkeypatch.setattr(
        outbox, "send", lambda name, *args, **kwargs: sent.append((name.rpartition(".")[2], *args)) or True
    )
    monkeypatch.setattr(runs, "publish", lambda run_id: pytest.fail("published inside the request"))
    live, target = [None], [None]
    monkeypatch.setattr(runs, "live_run_id", lambda: live[0])
    monkeypatch.setattr(runs, "rollback_target", lambda: target[0])
    client = staff("operator", can_retrain=True)
    operator = get_user_model().objects.get(username="operator")
    page = client.post(CHANGELIST, {"action": "make_live", "_selected_action": [run.id]}, follow=True)
    assert f"Run {run.id} is being made live" in page.content.decode()
    page = client.post(CHANGELIST, {"action": "roll_back", "_selected_action": [run.id]}, follow=True)
    assert "There is no earlier run to roll back to." in page.content.decode()
    assert sent == [("make_live", run.id, operator.id)]  # nothing queued for a rollback that cannot happen
    target[0] = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    page = client.post(CHANGELIST, {"action": "roll_back", "_selected_action": [run.id]}, follow=True)
    assert f"Rolling back to run {target[0].id}" in page.content.decode()
    assert sent[-1] == ("roll_back", operator.id)
    live[0] = run.id
    page = client.post(CHANGELIST, {"action": "make_live", "_selected_action": [run.id]}, follow=True)
    assert f"Run {run.id} is already live; nothing to do." in page.content.decode() and len(sent) == 2
    live[0] = None
    model.unlink()
    page = client.post(CHANGELIST, {"action": "make_live", "_selected_action": [run.id]}, follow=True)
    assert page.status_code == 200 and "model file is gone" in page.content.decode() and len(sent) == 2


def test_the_live_run_its_rollback_and_a_running_run_cannot_be_deleted(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import runs

    live, rollback, spare = (TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED) for _ in range(3))
    running = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING)
    monkeypatch.setattr(runs, "protected_runs", lambda: {live.id, rollback.id})
    for run in (live, rollback, running):
        page = admin_client.post(
            CHANGELIST, {"action": "delete_selected", "_selected_action": [run.id, spare.id]}, follow=True
        ).content.decode()
        assert "Not deleted: run" in page and "Are you sure" not in page
        page = admin_client.get(f"{CHANGELIST}{run.id}/delete/", follow=True).content.decode()
        assert "Not deleted: run" in page
        admin_client.post(f"{CHANGELIST}{run.id}/delete/", {"post": "yes"}, follow=True)
    assert TrainingRun.objects.count() == 4
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [spare.id], "post": "yes"})
    assert not TrainingRun.objects.filter(id=spare.id).exists()


def test_the_run_list_says_when_milvus_cannot_serve_the_live_run(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import serving
    from recommender.models import RecommenderState
    from recommender.vector_store import VectorStore

    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    RecommenderState.objects.update_or_create(id=1, defaults={"live_run": run})
    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    page = admin_client.get(CHANGELIST).content.decode()
    assert f"live run {run.id}, but Milvus cannot serve it (" in page


def test_the_run_list_compares_each_run_with_its_strongest_baseline(admin_client: Client) -> None:
    TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        test_metrics={"hr@10": 0.11},
        baseline_metrics={"ease": {"test": {"hr@10": 0.0918}}, "ease_recency": {"test": {"hr@10": 0.1115}}},
    )
    assert "0.1115 (ease_recency)" in admin_client.get(CHANGELIST).content.decode()


def test_a_training_runs_progress_and_estimate_show_on_its_page_and_the_list(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from recommender import serving
    from recommender.vector_store import VectorStore

    monkeypatch.setattr(serving, "_store", VectorStore("http://127.0.0.1:9", timeout=1))
    history = [{"epoch": 1, "loss": 1.0, "seconds": 50.0, "validation": {"hr@10": 0.2}}]
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        config={"epochs": 30, "patience": 4},
        history=history,
        started_at=timezone.now() - timedelta(seconds=60),
    )
    expected = f"run {run.id} training: epoch 1 of at most 30, best validation HR@10 0.2000 at epoch 1; live in about"
    assert expected in admin_client.get(f"{CHANGELIST}{run.id}/change/").content.decode()
    assert f"Training: {expected}" in admin_client.get(CHANGELIST).content.decode()


def test_retrain_with_settings_refuses_an_unknown_or_mistyped_setting_by_name_and_queues_nothing(
    admin_client: Client,
) -> None:
    url = f"{CHANGELIST}retrain-with-settings/"
    assert url in admin_client.get(CHANGELIST).content.decode()  # linked from the run list
    page = admin_client.post(url, {"settings": '{"walk": {"num_layer": 1}}'}).content.decode()
    assert "unknown training setting &#x27;walk.num_layer&#x27;" in page
    page = admin_client.post(url, {"settings": '{"epochs": "ten"}'}).content.decode()
    assert "training setting &#x27;epochs&#x27; is &#x27;ten&#x27;; it takes a int" in page
    assert "Not JSON" in admin_client.post(url, {"settings": "{epochs: 3"}).content.decode()
    assert not TrainingRun.objects.exists()
    admin_client.post(url, {"settings": '{"epochs": 3, "walk": {"num_layers": 1}}'})
    run = TrainingRun.objects.get()
    assert run.reason == "requested in admin with settings"
    assert run.training_config.epochs == 3 and run.training_config.walk.num_layers == 1


def test_retrain_with_settings_needs_the_retrain_permission(db) -> None:
    viewer = staff("viewer", can_retrain=False)
    assert viewer.post(f"{CHANGELIST}retrain-with-settings/", {"settings": "{}"}).status_code == 403
    assert not TrainingRun.objects.exists()


def test_experiment_and_daily_count_pages_render_and_an_experiment_is_refused_in_the_form_with_the_reason(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from recommender import runs
    from recommender.models import Experiment, ImpressionDay

    ImpressionDay.objects.create(day=date(2026, 12, 1), surface="page", source="personal", run_id=3, impressions=7)
    assert "7" in admin_client.get("/admin/recommender/impressionday/").content.decode()
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, artifact_path="/nowhere/model.pt")
    monkeypatch.setattr(runs, "live_run_id", lambda: None)
    response = admin_client.post(
        "/admin/recommender/experiment/add/", {"challenger": run.id, "share_percent": 50, "name": ""}
    )
    assert "No run is live yet" in response.content.decode() and not Experiment.objects.exists()
    experiment = Experiment.objects.create(live_run=run, challenger_run=run, salt="s", status="stopped")
    page = admin_client.get(f"/admin/recommender/experiment/{experiment.id}/change/").content.decode()
    assert "more people must click or rate" in page and "Make the challenger live" in page
