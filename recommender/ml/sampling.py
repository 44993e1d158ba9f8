"""PinSage importance neighbourhoods (random walks, once per run) and next-movie training batches."""

from dataclasses import dataclass

import dgl
import numpy as np
import torch

from recommender.ml.config import WalkConfig
from recommender.ml.data import Histories
from recommender.ml.graph import MOVIE, USER, InteractionGraph

VISITS = "visits"


@dataclass(frozen=True)
class Neighborhoods:
    """Each movie's importance neighbourhood as a movie -> movie graph (edges neighbour -> movie).

    Edge VISITS weights are visit counts normalised to sum to 1 per movie, so aggregation is a
    weighted mean; a movie nobody rated has no in-edges."""

    graph: dgl.DGLGraph
    # The same edges as sparse CSR matrices (movie x neighbour and its transpose): a weighted mean is one
    # sparse product and its gradient another. Timed once here at ml-latest-small's size (9.7k movies x 50
    # neighbours x 128), forward + backward: 0.11 s against 0.43 s for DGL's u_mul_e/sum message passing.
    adjacency: torch.Tensor
    adjacency_t: torch.Tensor

    @property
    def num_movies(self) -> int:
        count: int = self.graph.num_nodes()
        return count

    def to(self, device: torch.device) -> "Neighborhoods":
        return Neighborhoods(self.graph.to(device), self.adjacency.to(device), self.adjacency_t.to(device))

    @classmethod
    def of(cls, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, num_movies: int) -> "Neighborhoods":
        graph = dgl.graph((src, dst), num_nodes=num_movies)
        graph.edata[VISITS] = weight
        shape = (num_movies, num_movies)
        adjacency = torch.sparse_coo_tensor(torch.stack([dst, src]), weight, shape).coalesce().to_sparse_csr()
        adjacency_t = torch.sparse_coo_tensor(torch.stack([src, dst]), weight, shape).coalesce().to_sparse_csr()
        return cls(graph, adjacency, adjacency_t)


def importance_neighborhoods(
    interactions: InteractionGraph, walk: WalkConfig, seed: int = 0, chunk_size: int = 4096
) -> Neighborhoods:
    """Random walks with restart from every movie, the top `num_neighbors` by visit count kept.

    Computed once per run over the whole catalogue in chunks (bounded memory), instead of
    re-sampling neighbourhoods in every batch: the visit counts come from many walks, so they are
    stable, and training and inference see the same neighbourhood."""
    dgl.seed(seed)
    graph = interactions.graph
    sampler = dgl.sampling.PinSAGESampler(
        graph,
        MOVIE,
        USER,
        walk.num_traversals,
        walk.restart_prob,
        walk.num_random_walks,
        walk.num_neighbors,
        weight_column=VISITS,
    )
    sources, targets, visits = [], [], []
    for start in range(0, interactions.num_movies, chunk_size):
        seeds = torch.arange(start, min(start + chunk_size, interactions.num_movies))
        frontier = sampler(seeds)
        src, dst = frontier.edges()
        keep = src != dst
        sources.append(src[keep])
        targets.append(dst[keep])
        visits.append(frontier.edata[VISITS][keep].float())
    src, dst, weight = torch.cat(sources), torch.cat(targets), torch.cat(visits)
    totals = torch.zeros(interactions.num_movies).index_add_(0, dst, weight)
    return Neighborhoods.of(src, dst, weight / totals[dst].clamp(min=1e-9), interactions.num_movies)


@dataclass(frozen=True)
class NextMovieBatch:
    """Each row: a target rating and the user's ratings just before it, weighted as serving weights them."""

    targets: torch.Tensor  # (batch,) movie_index
    context_rows: torch.Tensor  # (num_context,) row of the batch each context movie belongs to
    context_movies: torch.Tensor  # (num_context,) movie_index
    context_weights: torch.Tensor  # (num_context,) float32


class NextMovieSampler:
    """Targets drawn per rating (not per movie), each with the `context_size` ratings the user made before it.

    This is the PinSage positive "engaged with right after", generalised from one query movie to the
    recent history that serving sums over; the loss then ranks the target against every movie."""

    def __init__(
        self,
        sequences: Histories,
        context_size: int,
        recency_half_life: float,
        star_power: float,
        min_context_stars: float,
        generator: np.random.Generator,
    ) -> None:
        self.sequences = sequences
        self.context_size = context_size
        self.recency_half_life = recency_half_life
        self.star_power = star_power
        self.min_context_stars = min_context_stars
        self.generator = generator
        user_of = np.repeat(np.arange(len(sequences.starts) - 1), np.diff(sequences.starts))
        # A rating can be a target only if the user rated something before it.
        self.candidates = np.flatnonzero(np.arange(len(sequences.movies)) > sequences.starts[user_of])
        self.first_of = sequences.starts[user_of]

    @property
    def num_targets(self) -> int:
        return len(self.candidates)

    def sample(self, batch_size: int) -> NextMovieBatch:
        positions = self.candidates[self.generator.integers(len(self.candidates), size=batch_size)]
        lags = np.arange(1, self.context_size + 1)
        context = positions[:, None] - lags[None, :]  # (batch, context_size), newest first
        valid = context >= self.first_of[positions][:, None]
        context = np.where(valid, context, 0)
        stars = self.sequences.stars[context]
        valid &= stars >= self.min_context_stars
        recency = 0.5 ** ((lags - 1) / self.recency_half_life) if self.recency_half_life else np.ones(len(lags))
        weights = (stars / 5.0) ** self.star_power * recency[None, :]
        rows, columns = np.nonzero(valid)
        return NextMovieBatch(
            torch.from_numpy(self.sequences.movies[positions]),
            torch.from_numpy(rows),
            torch.from_numpy(self.sequences.movies[context[rows, columns]]),
            torch.from_numpy(weights[rows, columns].astype(np.float32)),
        )
