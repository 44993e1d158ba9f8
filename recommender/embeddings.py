"""Movie embeddings from a trained network, in batches, in movie_index order."""
import dgl
import numpy as np
import torch

from recommender.graph import InteractionGraph
from recommender.pinsage import PinSageNetwork
from recommender.sampling import NeighborSampler, WalkConfig


@torch.no_grad()
def movie_embeddings(network: PinSageNetwork, interactions: InteractionGraph, walk: WalkConfig,
                     seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """(num_movies, hidden_dim) float32, L2-normalised; the same seed gives the same vectors."""
    network.eval()
    dgl.seed(seed)
    torch.manual_seed(seed)
    device = next(network.parameters()).device
    sampler = NeighborSampler(interactions, walk)
    chunks = []
    for start in range(0, interactions.num_movies, batch_size):
        seeds = torch.arange(start, min(start + batch_size, interactions.num_movies))
        blocks = [block.to(device) for block in sampler.blocks(seeds)]
        chunks.append(network(blocks).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32)
