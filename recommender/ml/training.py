"""train(neighbourhoods, sequences, features, config) -> TrainingResult: the optimisation loop and nothing else."""

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import dgl
import numpy as np
import torch

# Re-exported: the settings lived here.
from recommender.ml.config import EdgeWeighting as EdgeWeighting
from recommender.ml.config import InvalidSetting as InvalidSetting
from recommender.ml.config import TrainingConfig as TrainingConfig
from recommender.ml.config import WalkConfig as WalkConfig
from recommender.ml.config import check_overrides as check_overrides
from recommender.ml.config import deep_merged as deep_merged
from recommender.ml.data import Histories
from recommender.ml.features import MovieFeatures
from recommender.ml.pinsage import PinSageNetwork, next_movie_loss
from recommender.ml.sampling import Neighborhoods, NextMovieSampler
from recommender.ml.scoring import ScoringConfig as ScoringConfig


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; nothing from this run may be published."""


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    batches_per_second: float
    validation: dict[str, float]
    learning_rate: float  # the rate this epoch trained at


@dataclass
class TrainingResult:
    network: PinSageNetwork
    history: list[EpochRecord]
    best_epoch: int  # the best single epoch
    seconds: float
    seconds_to_best: float  # to the network kept: its last averaged epoch and the average's validation, if averaged
    averaged_epochs: list[int] = field(default_factory=list)  # the epochs whose mean weights were kept; [] if none


Validate = Callable[[PinSageNetwork], dict[str, float]]


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    dgl.seed(seed)
    return np.random.default_rng(seed)


def validation_key(metrics: dict[str, float]) -> float:
    """What early stopping maximises: HR@10 and NDCG@10 together, less noisy than HR@10 alone."""
    return metrics["hr@10"] + metrics["ndcg@10"]


def batch_size_for(config: TrainingConfig, num_movies: int) -> int:
    """The targets of one step: batch_size, fewer where the softmax over every movie would pass max_batch_logits
    (at 25M ratings' 62k movies, 512), kept a multiple of 256 and at least 256."""
    fitting = config.max_batch_logits // max(1, num_movies) // 256 * 256
    return min(config.batch_size, max(256, fitting))


def train(
    neighborhoods: Neighborhoods,
    sequences: Histories,
    features: MovieFeatures,
    config: TrainingConfig,
    validate: Validate,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainingResult:
    """Trains until the validation score stops improving; returns the network at its best epoch, or with the mean
    weights of its `average_epochs` best epochs where that mean validates better still."""
    generator = seed_everything(config.seed)
    device = torch.device(config.device)
    network = PinSageNetwork(
        features, config.hidden_dim, config.walk.num_layers, config.dropout, config.use_id_embedding
    ).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sampler = NextMovieSampler(
        sequences,
        config.context_size,
        config.context_half_life,
        config.scoring.star_power,
        config.scoring.min_stars,
        generator,
    )
    neighborhoods = neighborhoods.to(device)
    history: list[EpochRecord] = []
    best_state, best_score, best_epoch, seconds_to_best = None, -1.0, 0, 0.0
    snapshots: list[_Snapshot] = []  # the `average_epochs` best epochs so far, best first
    started = time.perf_counter()
    average = _WeightAverage(network, config.ema_decay) if config.ema_decay > 0 else None
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        loss = _train_epoch(network, optimizer, neighborhoods, sampler, config, device, average)
        seconds = time.perf_counter() - epoch_started
        if average is not None:
            average.swap_in()
        metrics = validate(network)
        rate = optimizer.param_groups[0]["lr"]
        record = EpochRecord(epoch, loss, seconds, config.batches_per_epoch / seconds, metrics, rate)
        history.append(record)
        if on_epoch:
            on_epoch(record)
        key = validation_key(metrics)
        improved = key > best_score + (config.min_improvement if best_state is not None else 0.0)
        # One copy of the weights serves both the best epoch and the snapshots, and only when one of them needs it.
        ranks = config.average_epochs > 1 and (len(snapshots) < config.average_epochs or key > snapshots[-1].key)
        state = copy.deepcopy(network.state_dict()) if improved or ranks else None
        if ranks:
            snapshot = _Snapshot(key, epoch, cast(dict[str, torch.Tensor], state), time.perf_counter() - started)
            snapshots = sorted([*snapshots, snapshot], key=lambda s: (-s.key, s.epoch))[: config.average_epochs]
        if improved:
            best_score, best_epoch, best_state = key, epoch, state
            seconds_to_best = time.perf_counter() - started
        if average is not None:
            average.swap_out()
        if best_epoch != epoch and epoch - best_epoch >= config.patience:
            break
        if best_epoch != epoch and config.plateau_decay < 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= config.plateau_decay
    if best_state is not None:
        network.load_state_dict(best_state)
    averaged: list[int] = []
    if len(snapshots) > 1:
        network.load_state_dict(mean_weights([s.state for s in snapshots]))
        validating = time.perf_counter()
        if validation_key(validate(network)) > best_score:
            averaged = sorted(s.epoch for s in snapshots)
            # The average could have been made once its last epoch was validated.
            seconds_to_best = max(s.seconds for s in snapshots) + time.perf_counter() - validating
        else:
            network.load_state_dict(cast(dict[str, torch.Tensor], best_state))
    return TrainingResult(network, history, best_epoch, time.perf_counter() - started, seconds_to_best, averaged)


@dataclass(frozen=True)
class _Snapshot:
    key: float  # validation_key of the epoch
    epoch: int
    state: dict[str, torch.Tensor]
    seconds: float  # since training started, when the epoch had been validated


def mean_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of each floating-point weight; other buffers from the first (the best) state."""
    return {
        name: torch.stack([state[name] for state in states]).mean(dim=0) if value.is_floating_point() else value
        for name, value in states[0].items()
    }


class _WeightAverage:
    """An exponential moving average of the floating-point weights, swapped in to validate and keep."""

    def __init__(self, network: PinSageNetwork, decay: float) -> None:
        self.network, self.decay = network, decay
        self.average = {k: v.detach().clone() for k, v in network.state_dict().items() if v.is_floating_point()}
        self.saved: dict[str, torch.Tensor] | None = None

    def update(self) -> None:
        with torch.no_grad():
            for name, value in self.network.state_dict().items():
                if name in self.average:
                    self.average[name].mul_(self.decay).add_(value, alpha=1.0 - self.decay)

    def swap_in(self) -> None:
        self.saved = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        self.network.load_state_dict({**self.saved, **self.average})

    def swap_out(self) -> None:
        self.network.load_state_dict(cast(dict[str, torch.Tensor], self.saved))  # set by swap_in
        self.saved = None


def _train_epoch(
    network: PinSageNetwork,
    optimizer: torch.optim.Optimizer,
    neighborhoods: Neighborhoods,
    sampler: NextMovieSampler,
    config: TrainingConfig,
    device: torch.device,
    average: _WeightAverage | None = None,
) -> float:
    network.train()
    total = 0.0
    if not sampler.num_targets:
        return 0.0
    batch_size = batch_size_for(config, neighborhoods.num_movies)
    for _ in range(config.batches_per_epoch):
        batch = sampler.sample(batch_size)
        embeddings = network(neighborhoods)  # (num_movies, hidden_dim): every movie, so the softmax sees them all
        loss = next_movie_loss(
            embeddings,
            batch.targets.to(device),
            batch.context_rows.to(device),
            batch.context_movies.to(device),
            batch.context_weights.to(device),
            config.temperature,
        )
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value}")
        optimizer.zero_grad()
        torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
        optimizer.step()
        if average is not None:
            average.update()
        total += value
    return total / config.batches_per_epoch
