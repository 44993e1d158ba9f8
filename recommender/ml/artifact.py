"""A trained run's model file: one dataclass, saved and loaded here and nowhere else."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from recommender.ml.config import TrainingConfig


@dataclass
class ModelArtifact:
    state_dict: dict[str, torch.Tensor]  # the network's weights
    config: dict[str, Any]  # TrainingConfig.as_dict() of the run, scoring rule as chosen on validation
    movie_ids: npt.NDArray[np.int64]  # (num_movies,) Movie ids in node order, the id embedding's rows
    vocabulary: tuple[str, ...]  # title tokens the features were built with
    genre_names: tuple[str, ...]  # genres the features were built with
    embeddings: npt.NDArray[np.float32]  # (num_movies, hidden_dim) the vectors published, over every rating

    def save(self, path: Path) -> Path:
        """Written to a .part file first, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        torch.save(asdict(self), partial)
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "ModelArtifact":
        data = torch.load(path, map_location="cpu", weights_only=False)
        fields = {name: data[name] for name in cls.__dataclass_fields__}
        # Files saved before these were typed hold lists.
        fields["vocabulary"], fields["genre_names"] = tuple(fields["vocabulary"]), tuple(fields["genre_names"])
        return cls(**fields)

    def training_config(self) -> TrainingConfig:
        """The run's settings as the typed tree, its serving rule as chosen on validation."""
        return TrainingConfig.from_dict(self.config)

    def row_of(self, movie_id: int) -> int | None:
        """The movie's row in `embeddings`, None when it was not trained on."""
        rows = np.flatnonzero(self.movie_ids == movie_id)
        return int(rows[0]) if len(rows) else None
