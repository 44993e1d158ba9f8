"""SASRec, the self-attentive sequential baseline, trained with cross-entropy over the whole catalogue.

Written here from the papers (Kang & McAuley, ICDM 2018; Klenitskiy & Vasilev, RecSys 2023, which showed the
full softmax lifts it far above its original sampled loss under leave-last-out full ranking). It is a baseline
for bench/quality, never served: each user's train ratings in time order (the split's order: same-second
ratings in its seeded random order) predict each next movie; early stopping on validation HR@10 + NDCG@10."""

import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from scipy import sparse
from torch import nn

from recommender.ml import evaluation
from recommender.ml.losses import full_softmax_cross_entropy

PAD = 0  # movie m is token m + 1


@dataclass(frozen=True)
class SASRecConfig:
    hidden_dim: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    max_length: int = 200
    batch_size: int = 128  # users a step, fewer where their logits over every movie would pass max_logits
    max_logits: int = 2**25
    learning_rate: float = 1e-3
    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation score
    # No wall-clock cap by default: one cut SASRec short on a loaded machine (600 s gave ml-latest-small 0.040
    # test HR@10 beside another benchmark, 0.098 on a quieter one), so a baseline's figure followed the load.
    max_seconds: float | None = None
    seed: int = 0


class SASRec(nn.Module):
    def __init__(self, num_movies: int, config: SASRecConfig) -> None:
        super().__init__()
        self.movies = nn.Embedding(num_movies + 1, config.hidden_dim, padding_idx=PAD)
        self.positions = nn.Embedding(config.max_length, config.hidden_dim)
        self.blocks = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    config.hidden_dim,
                    config.num_heads,
                    dim_feedforward=config.hidden_dim,
                    dropout=config.dropout,
                    batch_first=True,
                    norm_first=True,
                )
                for _ in range(config.num_blocks)
            ]
        )
        self.norm = nn.LayerNorm(config.hidden_dim)
        # Small rows, as the reference code's Xavier init gives: N(0, 1) rows make every logit (a dot product with
        # each movie's row) tens of units large, and the softmax starts saturated (a first loss of 55, not log n).
        for table in (self.movies, self.positions):
            nn.init.xavier_normal_(table.weight)
        with torch.no_grad():
            self.movies.weight[PAD].zero_()
        self.dropout = nn.Dropout(config.dropout)
        self.max_length = config.max_length

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, length) tokens, left-padded -> (batch, length, hidden) states, each seeing only the past."""
        length = tokens.shape[1]
        h = self.movies(tokens) * self.movies.embedding_dim**0.5 + self.positions(torch.arange(length))
        present = (tokens != PAD).unsqueeze(-1)
        h = self.dropout(h) * present
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        for block in self.blocks:  # padding stays zero after every block, so what attends to it reads nothing
            h = block(h, src_mask=causal) * present
        states: torch.Tensor = self.norm(h)
        return states

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every movie (the padding token left out): (..., num_movies)."""
        return states @ self.movies.weight[1:].T


def sequences(split: evaluation.Split, include_validation: bool) -> list[npt.NDArray[np.int64]]:
    """Each user's movies, oldest first (train is sorted by user, time, then the split's tie order; the
    validation rating, when included, came after all of them)."""
    users, movies = split.train[0], split.train[1]
    starts = np.searchsorted(users, np.arange(split.num_users + 1))
    per_user = [movies[starts[u] : starts[u + 1]] for u in range(split.num_users)]
    if include_validation:
        per_user = [
            np.append(s, split.validation[u]) if split.validation[u] >= 0 else s for u, s in enumerate(per_user)
        ]
    return per_user


def _padded(rows: list[npt.NDArray[np.int64]], length: int) -> torch.Tensor:
    """The last `length` movies of each row as tokens, left-padded: (len(rows), length)."""
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        tail = row[-length:]
        if len(tail):
            out[i, -len(tail) :] = tail + 1
    return torch.from_numpy(out)


def train_sasrec(split: evaluation.Split, config: SASRecConfig) -> SASRec:
    """Next-movie cross-entropy over every movie at every position; the epoch with the best validation kept."""
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    model = SASRec(split.num_movies, config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98))
    train = [s for s in sequences(split, include_validation=False) if len(s) >= 2]
    per_step = max(1, min(config.batch_size, config.max_logits // (config.max_length * max(split.num_movies, 1))))
    best, best_state, waited, started = -1.0, None, 0, time.monotonic()
    for _ in range(config.max_epochs):
        model.train()
        for batch in np.array_split(generator.permutation(len(train)), max(1, len(train) // per_step)):
            tokens = _padded([train[i] for i in batch], config.max_length + 1)
            inputs, targets = tokens[:, :-1], tokens[:, 1:]
            present = (targets != PAD) & (inputs != PAD)
            states = model(inputs)[present]  # (positions with a next movie, hidden)
            loss = full_softmax_cross_entropy(states, model.movies.weight[1:], targets[present] - 1)
            optimiser.zero_grad()
            torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
            optimiser.step()
        metrics = evaluation.evaluate(split, SASRecScorer(split, model, config), "validation")
        score = metrics["hr@10"] + metrics["ndcg@10"]
        if score > best:
            best, best_state, waited = score, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
        if waited >= config.patience:
            break
        if config.max_seconds is not None and time.monotonic() - started > config.max_seconds:
            break
    model.load_state_dict(cast(dict[str, torch.Tensor], best_state))  # the first epoch always sets it
    return model


class SASRecScorer:
    """A Scorer: every movie's score for each user, from the state after the user's last rating."""

    def __init__(self, split: evaluation.Split, model: SASRec, config: SASRecConfig) -> None:
        self.model = model
        self.length = config.max_length
        self.by_scope = {flag: sequences(split, flag) for flag in (False, True)}

    @torch.no_grad()
    def __call__(
        self, history: sparse.csr_matrix, users: npt.NDArray[np.int64], with_validation: bool
    ) -> npt.NDArray[np.float32]:
        self.model.eval()
        rows = self.by_scope[with_validation]
        states = self.model(_padded([rows[u] for u in users], self.length))[:, -1]  # (len(users), hidden)
        scores: npt.NDArray[np.float32] = self.model.logits(states).numpy()
        return scores


def sasrec_scorer(split: evaluation.Split, **params: Any) -> SASRecScorer:
    """Trained on the split's train ratings with early stopping on its validation, as bench/quality tunes."""
    config = SASRecConfig(**params)
    return SASRecScorer(split, train_sasrec(split, config), config)
