"""recommender/ml/sampling.py: importance neighbourhoods from random walks, and next-movie training batches."""

import numpy as np
import torch

from recommender.ml.data import Histories
from recommender.ml.graph import build_interaction_graph
from recommender.ml.sampling import VISITS, NextMovieSampler, WalkConfig, importance_neighborhoods


def tiny_graph(tiny_interactions):
    return build_interaction_graph(tiny_interactions.interactions, tiny_interactions.catalogue.movie_ids)


def test_neighbourhoods_are_co_rated_weighted_and_never_self(tiny_interactions) -> None:
    built = tiny_graph(tiny_interactions)
    hoods = importance_neighborhoods(built, WalkConfig(num_random_walks=50, num_neighbors=3), seed=0)
    src, dst = hoods.graph.edges()
    assert hoods.num_movies == 8 and not torch.any(src == dst)
    assert torch.max(hoods.graph.in_degrees()) <= 3
    totals = torch.zeros(8).index_add_(0, dst, hoods.graph.edata[VISITS])
    rated = built.graph.in_degrees(etype="rated") > 0
    assert torch.allclose(totals[rated], torch.ones(int(rated.sum())))  # a weighted mean per rated movie
    assert hoods.graph.in_degrees(7) == 0  # nobody rated movie 7: no neighbours
    raters = {m: set(built.graph.predecessors(m, etype="rated").tolist()) for m in range(8)}
    two_hops = {m: {n for u in raters[m] for n in built.graph.successors(u, etype="rated").tolist()} for m in range(8)}
    assert all(
        s in two_hops[d] or any(s in two_hops[x] for x in two_hops[d]) for s, d in zip(src.tolist(), dst.tolist())
    )


def test_the_same_seed_gives_the_same_neighbourhoods(tiny_interactions) -> None:
    built = tiny_graph(tiny_interactions)
    first, second = (
        importance_neighborhoods(built, WalkConfig(num_random_walks=10, num_neighbors=3), seed=4) for _ in range(2)
    )
    assert all(torch.equal(a, b) for a, b in zip(first.graph.edges(), second.graph.edges()))


def test_each_target_sees_only_ratings_its_user_made_before_it() -> None:
    users = np.array([0, 0, 0, 1, 1])
    movies = np.array([5, 6, 7, 8, 9])
    times = np.array([3, 1, 2, 1, 2])
    sequences = Histories.of(users, movies, np.full(5, 5.0, dtype=np.float32), times, 2)
    assert sequences.movies.tolist() == [6, 7, 5, 8, 9]
    sampler = NextMovieSampler(
        sequences,
        context_size=5,
        recency_half_life=1.0,
        star_power=1.0,
        min_context_stars=0.0,
        generator=np.random.default_rng(0),
    )
    assert sampler.num_targets == 3  # each user's first rating has nothing before it
    batch = sampler.sample(200)
    before = {7: {6}, 5: {6, 7}, 9: {8}}
    for row, target in enumerate(batch.targets.tolist()):
        context = batch.context_movies[batch.context_rows == row].tolist()
        assert set(context) == before[target]
    newest = batch.context_weights[(batch.targets[batch.context_rows] == 5) & (batch.context_movies == 7)]
    older = batch.context_weights[(batch.targets[batch.context_rows] == 5) & (batch.context_movies == 6)]
    assert torch.allclose(newest, torch.ones_like(newest)) and torch.allclose(older, torch.full_like(older, 0.5))
