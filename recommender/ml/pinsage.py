"""The network: feature projector, weighted SAGE layers over importance neighbourhoods, next-movie loss."""

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from recommender.ml.features import PAD, YEAR_BUCKETS, MovieFeatures
from recommender.ml.losses import full_softmax_cross_entropy
from recommender.ml.sampling import Neighborhoods

FEATURE_INIT_STD = 0.01  # PyTorch's N(0, 1) rows would give every movie a prior of norm ~11: "its year and title"
NUM_DEGREE_BUCKETS = 24


class FeatureProjector(nn.Module):
    """Genres + year + title tokens + log-degree (+ a learnable id embedding) -> one hidden vector per movie."""

    def __init__(self, features: MovieFeatures, hidden_dim: int, use_id_embedding: bool = True) -> None:
        super().__init__()
        self.features = features
        self.genres = nn.Linear(features.genres.shape[1], hidden_dim, bias=False)
        self.year = nn.Embedding(len(YEAR_BUCKETS) + 2, hidden_dim)
        self.title = nn.EmbeddingBag(len(features.vocabulary) + 2, hidden_dim, mode="mean", padding_idx=PAD)
        self.degree = nn.Embedding(NUM_DEGREE_BUCKETS, hidden_dim)
        self.ids = nn.Embedding(features.num_movies, hidden_dim) if use_id_embedding else None
        for table in (self.year, self.title, self.degree):
            nn.init.normal_(table.weight, std=FEATURE_INIT_STD)
        nn.init.normal_(self.genres.weight, std=FEATURE_INIT_STD)
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=FEATURE_INIT_STD)

    def forward(self, movie_index: torch.Tensor) -> torch.Tensor:
        device = self.genres.weight.device
        cpu_index = movie_index.cpu()
        degree_bucket = cast(torch.Tensor, self.features.degree_bucket)  # never None: MovieFeatures fills it
        hidden: torch.Tensor = (
            self.genres(self.features.genres[cpu_index].to(device))
            + self.year(self.features.year_bucket[cpu_index].to(device))
            + self.title(self.features.title_tokens[cpu_index].to(device))
            + self.degree(degree_bucket[cpu_index].to(device))
        )  # (batch, hidden_dim)
        if self.ids is not None:
            hidden = hidden + self.ids(movie_index.to(device))
        return hidden


class _WeightedMean(torch.autograd.Function):
    """adjacency @ h, with the gradient from the stored transpose (PyTorch would transpose CSR every step)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, adjacency: torch.Tensor, adjacency_t: torch.Tensor) -> torch.Tensor:
        ctx.adjacency_t = adjacency_t
        mean: torch.Tensor = torch.sparse.mm(adjacency, h)
        return mean

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return torch.sparse.mm(ctx.adjacency_t, grad), None, None


# Function.apply is unannotated in torch: the same call, typed.
_weighted_mean = cast(Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], _WeightedMean.apply)


class WeightedSAGEConv(nn.Module):
    """Aggregates neighbours by their visit-weighted mean, then mixes with the movie itself.

    The last layer is linear: a ReLU there would keep every vector in the positive orthant."""

    def __init__(self, input_dim: int, output_dim: int, dropout: float, is_last: bool) -> None:
        super().__init__()
        self.neighbor = nn.Linear(input_dim, output_dim)
        self.combine = nn.Linear(input_dim + output_dim, output_dim)
        self.dropout = nn.Dropout(dropout)
        self.is_last = is_last

    def forward(self, neighborhoods: Neighborhoods, h: torch.Tensor) -> torch.Tensor:
        messages = F.relu(self.neighbor(self.dropout(h)))
        mean = _weighted_mean(messages, neighborhoods.adjacency, neighborhoods.adjacency_t)  # weights sum to 1
        out = self.combine(self.dropout(torch.cat([mean, h], dim=1)))  # (num_movies, output_dim)
        return out if self.is_last else F.relu(out)


class PinSageNetwork(nn.Module):
    def __init__(
        self, features: MovieFeatures, hidden_dim: int, num_layers: int, dropout: float, use_id_embedding: bool = True
    ) -> None:
        super().__init__()
        self.projector = FeatureProjector(features, hidden_dim, use_id_embedding)
        self.layers = nn.ModuleList(
            [WeightedSAGEConv(hidden_dim, hidden_dim, dropout, i == num_layers - 1) for i in range(num_layers)]
        )

    def forward(self, neighborhoods: Neighborhoods) -> torch.Tensor:
        """L2-normalised embeddings of every movie of the neighbourhoods: (num_movies, hidden_dim).

        Full-graph, layer by layer, as PinSage's inference does: no movie's neighbourhood is computed twice."""
        h = self.projector(torch.arange(neighborhoods.num_movies))
        for layer in self.layers:
            h = layer(neighborhoods, h)
        return F.normalize(h, dim=1)


def next_movie_loss(
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    context_rows: torch.Tensor,
    context_movies: torch.Tensor,
    context_weights: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Softmax cross-entropy of each target against every movie, the query being the weighted sum of its
    context's vectors (the serving rule's fused score without the neighbour cut). The context movies
    are masked out: they are already rated and never recommended."""
    batch = len(targets)
    query = torch.zeros(batch, embeddings.shape[1], device=embeddings.device)
    query = query.index_add(0, context_rows, context_weights.unsqueeze(1) * embeddings[context_movies])
    has_context = torch.zeros(batch, dtype=torch.bool, device=embeddings.device)
    has_context[context_rows] = True
    kept = torch.nonzero(has_context).squeeze(1)
    row_of = torch.full((batch,), -1, dtype=torch.long, device=embeddings.device)
    row_of[kept] = torch.arange(len(kept), device=embeddings.device)
    masked = context_movies != targets[context_rows]
    return full_softmax_cross_entropy(
        F.normalize(query[kept], dim=1) / temperature,
        embeddings,
        targets[kept],
        row_of[context_rows[masked]],
        context_movies[masked],
    )
