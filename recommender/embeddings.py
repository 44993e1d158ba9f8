"""Movie embeddings from a trained network, in batches, in movie_index order."""
import dgl
import numpy as np
import torch

from recommender.graph import InteractionGraph
from recommender.pinsage import PinSageNetwork
from recommender.features import MovieFeatures
from recommender.sampling import VISITS, NeighborSampler, WalkConfig


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


@torch.no_grad()
def cold_start_embeddings(network: PinSageNetwork, features: MovieFeatures) -> np.ndarray:
    """Vectors for movies the trained graph has never seen, from their features alone (inductive).

    Each movie is a block with no neighbours, so the layers see only the movie itself, and the id
    embedding is left out: a new movie has no learned id."""
    network.eval()
    trained_features, trained_ids = network.projector.features, network.projector.ids
    network.projector.features, network.projector.ids = features, None
    try:
        num = features.num_movies
        blocks = []
        for _ in network.layers:
            block = dgl.create_block(([], []), num_src_nodes=num, num_dst_nodes=num)
            block.srcdata[dgl.NID] = torch.arange(num)
            block.dstdata[dgl.NID] = torch.arange(num)
            block.edata[VISITS] = torch.zeros(0)
            blocks.append(block)
        return network(blocks).cpu().numpy().astype(np.float32)
    finally:
        network.projector.features, network.projector.ids = trained_features, trained_ids
