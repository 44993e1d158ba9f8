"""train(graph, features, config) -> TrainingResult: the optimisation loop and nothing else."""
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import dgl
import numpy as np
import torch

from recommender.features import MovieFeatures
from recommender.graph import EdgeWeighting, InteractionGraph
from recommender.pinsage import PinSageNetwork, pair_loss, pair_scores
from recommender.sampling import ItemPairSampler, NeighborSampler, WalkConfig, seeds_of
from recommender.scoring import ScoringConfig


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; nothing from this run may be published."""


@dataclass(frozen=True)
class TrainingConfig:
    hidden_dim: int = 128
    walk: WalkConfig = field(default_factory=WalkConfig)
    edges: EdgeWeighting = field(default_factory=EdgeWeighting)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    batch_size: int = 256
    batches_per_epoch: int = 300
    epochs: int = 20
    patience: int = 4                  # epochs without a better validation HR@10 before stopping
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    dropout: float = 0.1
    loss: str = "margin"               # "margin" (hinge) or "bpr"
    margin: float = 0.5
    popularity_negatives: float = 0.0  # share of negatives drawn by popularity (harder) rather than uniformly
    use_id_embedding: bool = True
    seed: int = 0
    device: str = "cpu"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        values = dict(data)
        values["walk"] = WalkConfig(**values.get("walk", {}))
        values["edges"] = EdgeWeighting(**values.get("edges", {}))
        values["scoring"] = ScoringConfig(**values.get("scoring", {}))
        return cls(**values)


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    batches_per_second: float
    validation: dict[str, float]


@dataclass
class TrainingResult:
    network: PinSageNetwork
    history: list[EpochRecord]
    best_epoch: int
    seconds: float
    seconds_to_best: float


Validate = Callable[[PinSageNetwork], dict[str, float]]


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    dgl.seed(seed)
    return torch.Generator().manual_seed(seed)


def train(interactions: InteractionGraph, features: MovieFeatures, config: TrainingConfig, validate: Validate,
          on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainingResult:
    """Trains until validation HR@10 stops improving; returns the network at its best epoch."""
    generator = seed_everything(config.seed)
    device = torch.device(config.device)
    network = PinSageNetwork(features, config.hidden_dim, config.walk.num_layers, config.dropout,
                             config.use_id_embedding).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    pairs = ItemPairSampler(interactions, generator, config.popularity_negatives)
    neighbors = NeighborSampler(interactions, config.walk)
    history: list[EpochRecord] = []
    best_state, best_hr, best_epoch, seconds_to_best = None, -1.0, 0, 0.0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        loss = _train_epoch(network, optimizer, pairs, neighbors, config, device)
        seconds = time.perf_counter() - epoch_started
        metrics = validate(network)
        record = EpochRecord(epoch, loss, seconds, config.batches_per_epoch / seconds, metrics)
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if metrics["hr@10"] > best_hr:
            best_hr, best_epoch = metrics["hr@10"], epoch
            best_state = copy.deepcopy(network.state_dict())
            seconds_to_best = time.perf_counter() - started
        elif epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    return TrainingResult(network, history, best_epoch, time.perf_counter() - started, seconds_to_best)


def _train_epoch(network: PinSageNetwork, optimizer: torch.optim.Optimizer, pairs: ItemPairSampler,
                 neighbors: NeighborSampler, config: TrainingConfig, device: torch.device) -> float:
    network.train()
    total = 0.0
    for _ in range(config.batches_per_epoch):
        batch = pairs.sample(config.batch_size)
        seeds = seeds_of(batch)
        blocks = [block.to(device) for block in neighbors.blocks(seeds, batch.heads, batch.tails)]
        embeddings = network(blocks)  # (len(seeds), hidden_dim), rows in seeds order
        position = torch.full((int(seeds.max()) + 1,), -1, dtype=torch.long)
        position[seeds] = torch.arange(len(seeds))
        position = position.to(device)
        positive = pair_scores(embeddings, position, batch.heads.to(device), batch.tails.to(device))
        negative = pair_scores(embeddings, position, batch.heads.to(device), batch.negatives.to(device))
        loss = pair_loss(positive, negative, config.loss, config.margin)
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += value
    return total / config.batches_per_epoch
