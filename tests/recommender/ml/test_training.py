"""recommender/ml/training.py (driven through experiment.prepare and train): tiny trainings on CPU in seconds,
loss goes down, seeds reproduce, NaN aborts."""

import numpy as np
import pytest

from recommender.ml import experiment
from recommender.ml.data import Interactions
from recommender.ml.experiment import NotEnoughData
from recommender.ml.sampling import NextMovieSampler, WalkConfig
from recommender.ml.training import TrainingConfig, TrainingDiverged, batch_size_for

TINY = dict(
    hidden_dim=16,
    batch_size=32,
    batches_per_epoch=10,
    epochs=6,
    patience=10,
    learning_rate=0.01,
    walk=WalkConfig(num_layers=1, num_random_walks=5, num_neighbors=3),
)


def test_training_reduces_the_loss(tiny_interactions) -> None:
    config = TrainingConfig(**TINY)
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    outcome = experiment.fit_pinsage(prepared, config)
    losses = [record.loss for record in outcome.result.history]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_every_movie_gets_an_embedding_even_unrated(tiny_interactions) -> None:
    config = TrainingConfig(**TINY)
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    outcome = experiment.fit_pinsage(prepared, config)
    assert outcome.embeddings.shape == (8, 16)
    assert np.allclose(np.linalg.norm(outcome.embeddings, axis=1), 1.0, atol=1e-5)


def test_same_seed_same_metrics_and_vectors(tiny_interactions) -> None:
    config = TrainingConfig(**TINY, seed=3)
    runs = [
        experiment.fit_pinsage(
            experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config), config
        )
        for _ in range(2)
    ]
    assert [r.loss for r in runs[0].result.history] == [r.loss for r in runs[1].result.history]
    assert runs[0].test == runs[1].test
    assert np.array_equal(runs[0].embeddings, runs[1].embeddings)


@pytest.mark.parametrize(
    ("num_movies", "expected"),
    [(1_682, 1024), (9_742, 1024), (62_423, 512), (150_000, 256), (10_000_000, 256)],
)
def test_the_batch_shrinks_where_its_softmax_over_every_movie_would_not_fit(num_movies: int, expected: int) -> None:
    assert batch_size_for(TrainingConfig(), num_movies) == expected
    assert batch_size_for(TrainingConfig(batch_size=32), num_movies) == 32


def test_training_draws_the_batch_that_fits(tiny_interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = []
    real = NextMovieSampler.sample
    monkeypatch.setattr(NextMovieSampler, "sample", lambda self, size: sizes.append(size) or real(self, size))
    config = TrainingConfig(**{**TINY, "epochs": 1, "batch_size": 1024, "max_batch_logits": 8 * 600})
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    experiment.fit_pinsage(prepared, config)
    assert sizes == [512] * config.batches_per_epoch  # 8 movies: 600 targets fit, cut to a multiple of 256


def test_nan_loss_aborts_the_run(tiny_interactions) -> None:
    config = TrainingConfig(**{**TINY, "temperature": float("nan")})
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    with pytest.raises(TrainingDiverged):
        experiment.fit_pinsage(prepared, config)


@pytest.mark.parametrize("num_ratings", [0, 1, 5])
def test_too_little_data_is_refused(tiny_interactions, num_ratings: int) -> None:
    data = tiny_interactions.interactions
    few = Interactions(
        data.user_ids[:num_ratings],
        data.movie_ids[:num_ratings],
        data.stars[:num_ratings],
        data.timestamps[:num_ratings],
    )
    with pytest.raises(NotEnoughData, match="not enough data"):
        experiment.prepare(few, tiny_interactions.catalogue, TrainingConfig(**TINY))


def test_a_weight_average_is_what_is_validated_and_kept(tiny_interactions) -> None:
    import torch

    from recommender.ml import training

    seen = []
    original = training._WeightAverage.swap_in

    def swap_in(self: object) -> None:
        original(self)
        seen.append({k: v.clone() for k, v in self.network.state_dict().items()})

    config = TrainingConfig(**{**TINY, "patience": 1}, ema_decay=0.9, average_epochs=1)
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    training._WeightAverage.swap_in = swap_in
    try:
        outcome = experiment.fit_pinsage(prepared, config, tune=False)
    finally:
        training._WeightAverage.swap_in = original
    kept = outcome.result.network.state_dict()
    best = seen[outcome.result.best_epoch - 1]
    assert all(torch.equal(kept[k], best[k]) for k in kept)  # the averaged weights of the best epoch
    plain = experiment.fit_pinsage(prepared, TrainingConfig(**{**TINY, "patience": 1}), tune=False)
    assert not np.array_equal(plain.embeddings, outcome.embeddings)


def test_the_learning_rate_drops_after_each_epoch_that_does_not_improve(tiny_interactions) -> None:
    from recommender.ml import training
    from recommender.ml.data import Histories
    from recommender.ml.sampling import importance_neighborhoods

    config = TrainingConfig(**{**TINY, "epochs": 5, "patience": 3}, plateau_decay=0.5, average_epochs=1)
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    users, movies, stars, times = prepared.split.train
    sequences = Histories.of(users, movies, stars, times, prepared.split.num_users)
    neighborhoods = importance_neighborhoods(prepared.train_graph, config.walk, config.seed)
    scores = iter([0.2, 0.1, 0.3, 0.3, 0.3])  # epoch 2 is worse, 3 improves, 4 and 5 do not
    result = training.train(
        neighborhoods, sequences, prepared.features, config, lambda network: {"hr@10": next(scores), "ndcg@10": 0}
    )
    rates = [record.learning_rate for record in result.history]
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])
    assert result.best_epoch == 3


def test_a_gain_below_min_improvement_is_not_a_better_epoch(tiny_interactions) -> None:
    """Epoch 3 gains 0.001 over epoch 2, below the default 0.002: epoch 2 stays best and patience runs out."""
    from recommender.ml import training
    from recommender.ml.data import Histories
    from recommender.ml.sampling import importance_neighborhoods

    config = TrainingConfig(**{**TINY, "epochs": 6, "patience": 3}, average_epochs=1)
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    users, movies, stars, times = prepared.split.train
    sequences = Histories.of(users, movies, stars, times, prepared.split.num_users)
    neighborhoods = importance_neighborhoods(prepared.train_graph, config.walk, config.seed)
    scores = iter([0.1, 0.2, 0.201, 0.2015, 0.2019, 0.5])
    result = training.train(
        neighborhoods, sequences, prepared.features, config, lambda network: {"hr@10": next(scores), "ndcg@10": 0}
    )
    assert result.best_epoch == 2 and len(result.history) == 5


def _scripted_training(tiny_interactions, scores: list[float], **settings: object) -> tuple[object, list[dict]]:
    """train() with validation scores given in order; returns the result and the weights each call validated."""
    from recommender.ml import training
    from recommender.ml.data import Histories
    from recommender.ml.sampling import importance_neighborhoods

    config = TrainingConfig(**{**TINY, **settings})
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    users, movies, stars, times = prepared.split.train
    sequences = Histories.of(users, movies, stars, times, prepared.split.num_users)
    neighborhoods = importance_neighborhoods(prepared.train_graph, config.walk, config.seed)
    remaining, validated = iter(scores), []

    def validate(network: object) -> dict[str, float]:
        validated.append({k: v.clone() for k, v in network.state_dict().items()})
        return {"hr@10": next(remaining), "ndcg@10": 0.0}

    return training.train(neighborhoods, sequences, prepared.features, config, validate), validated


def test_the_mean_of_the_best_epochs_weights_is_kept_when_it_validates_better(tiny_interactions) -> None:
    """Epochs 1, 3 and 4 are the best three; their mean validates at 0.5, above epoch 3's 0.3: it is kept."""
    import torch

    result, validated = _scripted_training(tiny_interactions, [0.2, 0.1, 0.3, 0.25, 0.1, 0.5], epochs=5, patience=9)
    assert result.best_epoch == 3 and result.averaged_epochs == [1, 3, 4]
    kept = result.network.state_dict()
    for name, value in kept.items():
        expected = (validated[0][name] + validated[2][name] + validated[3][name]) / 3
        assert torch.allclose(value, expected, atol=1e-6), name
    assert torch.equal(kept["projector.ids.weight"], validated[5]["projector.ids.weight"])  # what was validated
    assert not torch.allclose(kept["projector.ids.weight"], validated[2]["projector.ids.weight"])


def test_the_best_epoch_is_kept_when_the_mean_validates_worse(tiny_interactions) -> None:
    import torch

    result, validated = _scripted_training(tiny_interactions, [0.2, 0.1, 0.3, 0.25, 0.1, 0.29], epochs=5, patience=9)
    assert result.best_epoch == 3 and result.averaged_epochs == []
    assert all(torch.equal(value, validated[2][name]) for name, value in result.network.state_dict().items())


def test_one_epoch_averaged_is_no_average(tiny_interactions) -> None:
    result, validated = _scripted_training(tiny_interactions, [0.2, 0.1, 0.3], epochs=3, average_epochs=1)
    assert result.averaged_epochs == [] and len(validated) == 3  # no extra validation


def test_a_runs_own_model_scored_as_another_model_on_its_split_gives_its_own_validation(tiny_interactions) -> None:
    """The gate's like-with-like figure: the live model on the candidate's split. With the candidate's own
    model in the live model's place it must reproduce the candidate's validation exactly."""
    from dataclasses import replace

    from recommender.ml.artifact import ModelArtifact

    config = TrainingConfig(**{**TINY, "epochs": 2})
    prepared = experiment.prepare(tiny_interactions.interactions, tiny_interactions.catalogue, config)
    outcome = experiment.fit_pinsage(prepared, config, tune=False)
    artifact = ModelArtifact(
        state_dict=outcome.result.network.state_dict(),
        config=replace(config, scoring=outcome.scoring).as_dict(),
        movie_ids=prepared.catalogue.movie_ids,
        vocabulary=prepared.features.vocabulary,
        genre_names=prepared.features.genre_names,
        embeddings=outcome.embeddings,
    )
    assert experiment.validate_other_model(prepared, outcome.neighborhoods, artifact) == outcome.validation
    shuffled = replace(artifact, movie_ids=artifact.movie_ids[::-1].copy())  # ids learned for other movies
    assert experiment.validate_other_model(prepared, outcome.neighborhoods, shuffled) != outcome.validation


def test_use_tags_trains_with_the_catalogues_tags(tiny_interactions) -> None:
    from dataclasses import replace

    from recommender.ml.experiment import prepare

    tagged = replace(
        tiny_interactions.catalogue,
        tags=[["robots"] if i % 2 else [] for i in range(len(tiny_interactions.catalogue.titles))],
    )
    plain = prepare(tiny_interactions.interactions, tagged, TrainingConfig(eval_users=0))
    with_tags = prepare(tiny_interactions.interactions, tagged, TrainingConfig(eval_users=0, use_tags=True))
    assert "#robots" not in plain.features.vocabulary and "#robots" in with_tags.features.vocabulary


def test_the_next_movie_loss_is_the_masked_softmax_cross_entropy_with_its_gradient() -> None:
    """The fused loss against the textbook one: rated context movies masked to -inf (a context movie equal to
    the target is not), rows without context left out, the temperature on the logits; value and gradient."""
    import torch
    import torch.nn.functional as F

    from recommender.ml.pinsage import next_movie_loss

    torch.manual_seed(3)
    vectors = F.normalize(torch.randn(40, 8), dim=1)
    targets = torch.tensor([5, 6, 7, 8, 9])
    rows = torch.tensor([0, 0, 1, 3, 3, 3, 4])  # row 2 has no context
    movies = torch.tensor([1, 2, 6, 4, 5, 9, 11])  # row 1's only context movie is its target
    weights = torch.rand(7)

    def textbook(embeddings: torch.Tensor) -> torch.Tensor:
        query = torch.zeros(5, 8).index_add(0, rows, weights.unsqueeze(1) * embeddings[movies])
        logits = F.normalize(query, dim=1) @ embeddings.T / 0.1
        masked = movies != targets[rows]
        logits = logits.index_put((rows[masked], movies[masked]), torch.tensor(float("-inf")))
        has_context = torch.tensor([True, True, False, True, True])
        return F.cross_entropy(logits[has_context], targets[has_context])

    expected_input, fused_input = vectors.clone().requires_grad_(), vectors.clone().requires_grad_()
    expected, fused = textbook(expected_input), next_movie_loss(fused_input, targets, rows, movies, weights, 0.1)
    expected.backward()
    (2.0 * fused).backward()  # the incoming gradient is honoured, not assumed to be 1
    assert torch.isclose(fused, expected, atol=1e-5)
    assert torch.allclose(fused_input.grad, 2.0 * expected_input.grad, atol=1e-5)
