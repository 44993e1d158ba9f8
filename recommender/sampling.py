"""Item-pair batches from co-rating walks, and PinSage neighbour blocks for them."""
from dataclasses import dataclass

import dgl
import numpy as np
import torch

from recommender.graph import MOVIE, RATED, RATED_BY, USER, WEIGHT, InteractionGraph

VISITS = "visits"


@dataclass(frozen=True)
class WalkConfig:
    num_layers: int = 2
    num_traversals: int = 3       # length of each movie -> user -> movie walk, in hops pairs
    restart_prob: float = 0.5
    num_random_walks: int = 20
    num_neighbors: int = 20


@dataclass(frozen=True)
class PairBatch:
    heads: torch.Tensor  # (batch,) movie_index
    tails: torch.Tensor  # (batch,) movie_index co-rated with the head
    negatives: torch.Tensor  # (batch,) movie_index


class ItemPairSampler:
    """Heads among rated movies, tails one weighted movie->user->movie walk away, random negatives."""

    def __init__(self, interactions: InteractionGraph, generator: torch.Generator,
                 popularity_negatives: float = 0.0) -> None:
        graph = interactions.graph
        degree = graph.in_degrees(etype=RATED).float()
        self.graph = graph
        self.rated = torch.nonzero(degree > 0).squeeze(1)
        self.generator = generator
        # Mixing in popular negatives makes them harder: popular movies are what a lazy model ranks first.
        smoothed = degree.pow(0.75) + 1e-9
        self.negative_weights = (1 - popularity_negatives) / graph.num_nodes(MOVIE) + popularity_negatives * smoothed / smoothed.sum()

    def sample(self, batch_size: int) -> PairBatch:
        picks = torch.randint(len(self.rated), (batch_size,), generator=self.generator)
        heads = self.rated[picks]
        seed = int(torch.randint(2**31 - 1, (1,), generator=self.generator))
        dgl.seed(seed)
        traces, _ = dgl.sampling.random_walk(self.graph, heads, metapath=[RATED_BY, RATED], prob=WEIGHT)
        tails = traces[:, 2]
        usable = (tails >= 0) & (tails != heads)
        heads, tails = heads[usable], tails[usable]
        negatives = torch.multinomial(self.negative_weights, len(heads), replacement=True, generator=self.generator)
        return PairBatch(heads, tails, negatives)


class NeighborSampler:
    """One block per layer; neighbours are the movies most visited by random walks with restart."""

    def __init__(self, interactions: InteractionGraph, config: WalkConfig) -> None:
        self.graph = interactions.graph
        self.config = config
        self.samplers = [
            dgl.sampling.PinSAGESampler(self.graph, MOVIE, USER, config.num_traversals, config.restart_prob,
                                        config.num_random_walks, config.num_neighbors, weight_column=VISITS)
            for _ in range(config.num_layers)
        ]

    def blocks(self, seeds: torch.Tensor, heads: torch.Tensor | None = None,
               tails: torch.Tensor | None = None) -> list[dgl.DGLGraph]:
        """Blocks from input layer to output; the head–tail edges of training pairs are cut, so the
        model cannot score a pair by merely seeing that the two movies neighbour each other."""
        blocks = []
        for sampler in self.samplers:
            frontier = sampler(seeds)
            if heads is not None and tails is not None:
                frontier = _without_pair_edges(frontier, heads, tails)
            block = dgl.to_block(frontier, seeds)
            block.edata[VISITS] = frontier.edata[VISITS][block.edata[dgl.EID]].float()
            seeds = block.srcdata[dgl.NID]
            blocks.insert(0, block)
        return blocks


def _without_pair_edges(frontier: dgl.DGLGraph, heads: torch.Tensor, tails: torch.Tensor) -> dgl.DGLGraph:
    src = torch.cat([heads, tails])
    dst = torch.cat([tails, heads])
    present = frontier.has_edges_between(src, dst)
    if not bool(present.any()):
        return frontier
    edge_ids = frontier.edge_ids(src[present], dst[present])
    return dgl.remove_edges(frontier, edge_ids)


def seeds_of(batch: PairBatch) -> torch.Tensor:
    """The distinct movies a batch needs embeddings for."""
    return torch.unique(torch.cat([batch.heads, batch.tails, batch.negatives]))
