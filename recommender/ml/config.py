"""The training settings as one typed tree (no torch, no dgl: web processes and checks read it): the walk, the
edges, the served rule and the optimisation, with a strict deep merge for what people write."""

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recommender.ml.scoring import ScoringConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class WalkConfig:
    num_layers: int = 1  # one SAGE layer over 2-hop walk neighbourhoods: as good as two on validation, 7x faster
    num_traversals: int = 2  # movie -> user -> movie hops per walk before it may restart
    restart_prob: float = 0.5
    num_random_walks: int = 200  # walks per movie: enough that the top neighbours are more than single visits
    num_neighbors: int = 50  # T, the most visited movies kept as a movie's neighbourhood


@dataclass(frozen=True)
class EdgeWeighting:
    """Which ratings become edges, and how strongly they pull random walks."""

    min_stars: float = 0.0  # ratings below this are not edges (0 keeps every rating)
    star_power: float = 0.0  # weight *= (stars / 5) ** star_power
    recency_half_life_days: float = 0.0  # weight *= 0.5 ** (age / half life); 0 turns it off

    def weights(self, stars: npt.NDArray[np.float32], timestamps: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        weight = np.ones(len(stars), dtype=np.float32)
        if self.star_power:
            weight *= (stars / 5.0) ** self.star_power
        if self.recency_half_life_days and len(timestamps):
            age_days = (timestamps.max() - timestamps) / 86400.0
            weight *= 0.5 ** (age_days / self.recency_half_life_days)
        return np.maximum(weight, 1e-6).astype(np.float32)


@dataclass(frozen=True)
class TrainingConfig:
    hidden_dim: int = 128
    walk: WalkConfig = field(default_factory=WalkConfig)
    edges: EdgeWeighting = field(default_factory=EdgeWeighting)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    batch_size: int = 1024  # +0.005 val NDCG@10 over 512 on ml-latest-small, at about 2x the time a step
    max_batch_logits: int = 2**25  # a batch's (targets, movies) softmax is cut to fit, in steps of 256 targets
    batches_per_epoch: int = 100
    epochs: int = 30
    patience: int = 4  # epochs without a better validation score before stopping
    # A score is better only by more than this (HR@10 + NDCG@10): on ml-latest-small's 610 validation users the key
    # creeps up by a few ten-thousandths for epochs after its plateau, and each such "best" kept training going.
    min_improvement: float = 0.002
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    dropout: float = 0.1
    temperature: float = 0.1  # of the softmax over every movie
    context_size: int = 20  # ratings before the target that form its query
    context_half_life: float = 5.0  # in ratings, as the serving rule's recency_half_life
    use_id_embedding: bool = True
    # Each movie's strongest tags as tokens beside its title's (bench/results/ablations.md: kept off until the
    # ablation shows they help)
    use_tags: bool = False
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    # > 1: after training, the weights of this many best epochs (by validation) averaged into one network, kept if
    # it validates better than the best epoch alone (one epoch's validation HR@10 moves by about 0.02 on ml-100k).
    # Whether that choice beats the best epoch on held-out validation is not yet shown (bench/results/keep_rule*.md).
    average_epochs: int = 3
    plateau_decay: float = 1.0  # < 1: the learning rate is multiplied by it after each epoch that does not improve
    eval_users: int = 5000  # users held out for validation and test, a fixed sample beyond this many (0: all)
    seed: int = 0
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        """A stored config (a run's row, a model file): settings that no longer exist are ignored, so old runs
        still load. What people write goes through `with_overrides`, which refuses them."""
        values = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        values["walk"] = WalkConfig(**_known(WalkConfig, values.get("walk", {})))
        values["edges"] = EdgeWeighting(**_known(EdgeWeighting, values.get("edges", {})))
        values["scoring"] = ScoringConfig.stored(values.get("scoring", {}))  # as that run was scored
        return cls(**values)

    def with_overrides(self, overrides: dict[str, Any]) -> "TrainingConfig":
        """This config under overrides merged in deeply ({"walk": {"num_layers": 1}} keeps the walk's other
        settings); an unknown setting or a value of the wrong type raises InvalidSetting, naming it."""
        check_overrides(overrides)
        return TrainingConfig.from_dict(deep_merged(self.as_dict(), overrides))


class InvalidSetting(ValueError):
    """A training setting that does not exist, or a value of the wrong type; the message names it."""


_NESTED: "dict[str, type[DataclassInstance]]" = {"walk": WalkConfig, "edges": EdgeWeighting, "scoring": ScoringConfig}


def check_overrides(overrides: object, kind: "type[DataclassInstance]" = TrainingConfig, path: str = "") -> None:
    """Every key names a setting of `kind` (nested ones included) and every value has its default's type."""
    if not isinstance(overrides, dict):
        raise InvalidSetting(f"{path or 'the training config'} must be a JSON object, not {overrides!r}")
    defaults = kind().__dict__ if kind is not TrainingConfig else TrainingConfig().__dict__
    for key, value in overrides.items():
        name = f"{path}.{key}" if path else str(key)
        if key not in kind.__dataclass_fields__:
            known = ", ".join(sorted(kind.__dataclass_fields__))
            raise InvalidSetting(f"unknown training setting {name!r} (known here: {known})")
        nested = _NESTED.get(key) if kind is TrainingConfig else None
        if nested is not None:
            check_overrides(value, nested, name)
        elif not _same_kind(defaults[key], value):
            raise InvalidSetting(
                f"training setting {name!r} is {value!r}; it takes a {type(defaults[key]).__name__} "
                f"(default {defaults[key]!r})"
            )


def _same_kind(default: object, value: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def deep_merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, dictionaries key by key at every depth."""
    merged = dict(base)
    for key, value in overrides.items():
        both = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = deep_merged(merged[key], value) if both else value
    return merged


def _known(kind: "type[DataclassInstance]", values: dict[str, Any]) -> dict[str, Any]:
    """Settings of older runs that no longer exist are ignored, so their rows still load."""
    return {key: value for key, value in values.items() if key in kind.__dataclass_fields__}
