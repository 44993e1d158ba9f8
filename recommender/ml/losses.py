"""Cross-entropy over every movie, fused: PinSage's next-movie loss and SASRec's both rank each target against
the whole catalogue, and at a catalogue of thousands the softmax's full-size passes cost more than the products."""

from collections.abc import Callable
from typing import Any, cast

import torch


class _FullSoftmaxLoss(torch.autograd.Function):
    """Mean cross-entropy of (queries @ movies.T) with the given (row, movie) logits masked out, computed in
    one (batch, num_movies) buffer: the softmax is made in place and becomes the gradient, so the step holds one
    copy of the logits where F.cross_entropy after a masking index_put makes several full-size copies (at
    ml-latest-small's size, 1,024 x 9.7k, they cost more than the products). The backward overwrites what it
    saved, so a graph through this loss can be differentiated once (retain_graph is not supported)."""

    @staticmethod
    def forward(
        ctx: Any,
        queries: torch.Tensor,
        movies: torch.Tensor,
        targets: torch.Tensor,
        mask_rows: torch.Tensor,
        mask_movies: torch.Tensor,
    ) -> torch.Tensor:
        logits = queries @ movies.T  # (batch, num_movies)
        logits[mask_rows, mask_movies] = float("-inf")
        rows = torch.arange(len(targets), device=logits.device)
        target_logits = logits[rows, targets]
        # The softmax, in the logits' buffer (logsumexp would allocate a full-size copy of its own).
        largest = logits.max(dim=1).values
        probabilities = logits.sub_(largest.unsqueeze(1)).exp_()
        totals = probabilities.sum(dim=1)
        probabilities.div_(totals.unsqueeze(1))
        log_norm = largest + totals.log()
        ctx.save_for_backward(queries, movies, targets, probabilities)
        return (log_norm - target_logits).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        queries, movies, targets, probabilities = ctx.saved_tensors
        rows = torch.arange(len(targets), device=probabilities.device)
        probabilities[rows, targets] -= 1.0  # d loss / d logits = (softmax - one-hot) / batch; saved, used once
        probabilities.mul_(grad / len(targets))
        return probabilities @ movies, probabilities.T @ queries, None, None, None


_apply = cast(
    Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    _FullSoftmaxLoss.apply,
)


def full_softmax_cross_entropy(
    queries: torch.Tensor,
    movies: torch.Tensor,
    targets: torch.Tensor,
    mask_rows: torch.Tensor | None = None,
    mask_movies: torch.Tensor | None = None,
) -> torch.Tensor:
    """F.cross_entropy(queries @ movies.T, targets) with the logits at (mask_rows, mask_movies) set to -inf, its
    value and gradient, in about half the time on CPU (see _FullSoftmaxLoss)."""
    empty = torch.zeros(0, dtype=torch.long, device=queries.device)
    return _apply(
        queries,
        movies,
        targets,
        empty if mask_rows is None else mask_rows,
        empty if mask_movies is None else mask_movies,
    )
