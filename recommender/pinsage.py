"""The network: feature projector, weighted SAGE layers over PinSage blocks, pair scorer."""
import dgl
import dgl.function as fn
import torch
import torch.nn.functional as F
from torch import nn

from recommender.features import PAD, YEAR_BUCKETS, MovieFeatures
from recommender.sampling import VISITS


class FeatureProjector(nn.Module):
    """Genres + year + title tokens (+ a learnable id embedding) -> one hidden vector per movie."""

    def __init__(self, features: MovieFeatures, hidden_dim: int, use_id_embedding: bool = True) -> None:
        super().__init__()
        self.features = features
        self.genres = nn.Linear(features.genres.shape[1], hidden_dim, bias=False)
        self.year = nn.Embedding(len(YEAR_BUCKETS) + 2, hidden_dim)
        self.title = nn.EmbeddingBag(len(features.vocabulary) + 2, hidden_dim, mode="mean", padding_idx=PAD)
        self.ids = nn.Embedding(features.num_movies, hidden_dim) if use_id_embedding else None
        if self.ids is not None:
            # Zero start: a movie never seen in training keeps a zero id part and is placed by its features.
            nn.init.zeros_(self.ids.weight)

    def forward(self, movie_index: torch.Tensor) -> torch.Tensor:
        device = self.genres.weight.device
        tokens = self.features.title_tokens[movie_index.cpu()].to(device)
        hidden = (self.genres(self.features.genres[movie_index.cpu()].to(device))
                  + self.year(self.features.year_bucket[movie_index.cpu()].to(device))
                  + self.title(tokens))  # (batch, hidden_dim)
        if self.ids is not None:
            hidden = hidden + self.ids(movie_index.to(device))
        return hidden


class WeightedSAGEConv(nn.Module):
    """Aggregates neighbours by a visit-count-weighted mean, then mixes with the node itself."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, dropout: float) -> None:
        super().__init__()
        self.neighbor = nn.Linear(input_dim, hidden_dim)
        self.combine = nn.Linear(input_dim + hidden_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, block: dgl.DGLGraph, h_src: torch.Tensor, h_dst: torch.Tensor) -> torch.Tensor:
        with block.local_scope():
            block.srcdata["n"] = F.relu(self.neighbor(self.dropout(h_src)))
            block.edata["w"] = block.edata[VISITS].unsqueeze(1)
            block.update_all(fn.u_mul_e("n", "w", "m"), fn.sum("m", "n_sum"))
            block.update_all(fn.copy_e("w", "m"), fn.sum("m", "w_sum"))
            mean = block.dstdata["n_sum"] / block.dstdata["w_sum"].clamp(min=1)  # (num_dst, hidden_dim)
            out = F.relu(self.combine(self.dropout(torch.cat([mean, h_dst], dim=1))))
            return out / out.norm(dim=1, keepdim=True).clamp(min=1e-6)


class PinSageNetwork(nn.Module):
    def __init__(self, features: MovieFeatures, hidden_dim: int, num_layers: int, dropout: float,
                 use_id_embedding: bool = True) -> None:
        super().__init__()
        self.projector = FeatureProjector(features, hidden_dim, use_id_embedding)
        self.layers = nn.ModuleList(
            [WeightedSAGEConv(hidden_dim, hidden_dim, hidden_dim, dropout) for _ in range(num_layers)]
        )

    def forward(self, blocks: list[dgl.DGLGraph]) -> torch.Tensor:
        """L2-normalised embeddings of the last block's destination movies: (num_dst, hidden_dim)."""
        h = self.projector(blocks[0].srcdata[dgl.NID])
        for layer, block in zip(self.layers, blocks):
            h = layer(block, h, h[: block.num_dst_nodes()])
        # The movie's own features are added back, so a movie with few walks still looks like itself.
        h = h + self.projector(blocks[-1].dstdata[dgl.NID])
        return h / h.norm(dim=1, keepdim=True).clamp(min=1e-6)


def pair_scores(embeddings: torch.Tensor, position: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Inner products of (left, right) movie pairs; `position` maps movie_index -> row of embeddings."""
    return (embeddings[position[left]] * embeddings[position[right]]).sum(dim=1)


def pair_loss(positive: torch.Tensor, negative: torch.Tensor, kind: str, margin: float) -> torch.Tensor:
    if kind == "bpr":
        return -F.logsigmoid((positive - negative) / margin).mean()
    return (negative - positive + margin).clamp(min=0).mean()
