"""Movie embeddings from a trained network, in movie_index order."""

import numpy as np
import numpy.typing as npt
import torch

from recommender.ml.features import MovieFeatures
from recommender.ml.pinsage import PinSageNetwork
from recommender.ml.sampling import Neighborhoods


@torch.no_grad()
def movie_embeddings(network: PinSageNetwork, neighborhoods: Neighborhoods) -> npt.NDArray[np.float32]:
    """(num_movies, hidden_dim) float32, L2-normalised; the neighbourhoods are fixed, so this is deterministic."""
    network.eval()
    device = next(network.parameters()).device
    vectors: npt.NDArray[np.float32] = network(neighborhoods.to(device)).cpu().numpy().astype(np.float32)
    return vectors


@torch.no_grad()
def cold_start_embeddings(network: PinSageNetwork, features: MovieFeatures) -> npt.NDArray[np.float32]:
    """Vectors for movies the trained graph has never seen, from their features alone (inductive).

    The movies get no neighbours, so the layers see only each movie itself, and the id embedding is
    left out: a new movie has no learned id (and no ratings: its degree bucket is 0)."""
    network.eval()
    trained_features, trained_ids = network.projector.features, network.projector.ids
    network.projector.features, network.projector.ids = features, None
    try:
        none = torch.zeros(0, dtype=torch.int64)
        alone = Neighborhoods.of(none, none, torch.zeros(0), features.num_movies)
        vectors: npt.NDArray[np.float32] = network(alone).cpu().numpy().astype(np.float32)
        return vectors
    finally:
        network.projector.features, network.projector.ids = trained_features, trained_ids
