"""recommender/ml/graph.py, building the user–movie graph: ids, directions, weights."""

import numpy as np
import torch

from recommender.ml.graph import MOVIE, RATED, RATED_BY, USER, WEIGHT, EdgeWeighting, build_interaction_graph


def test_every_movie_is_a_node_and_ids_map_both_ways(tiny_interactions) -> None:
    built = build_interaction_graph(tiny_interactions.interactions, tiny_interactions.catalogue.movie_ids)
    assert built.graph.num_nodes(MOVIE) == 8 and built.graph.num_nodes(USER) == 5
    assert list(built.movie_ids) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert list(built.movie_indices(np.array([80, 10, 999]))) == [7, 0, -1]
    assert built.graph.in_degrees(torch.tensor([7]), etype=RATED).item() == 0  # movie 80 has no ratings


def test_edges_go_both_ways_between_the_right_nodes(tiny_interactions) -> None:
    built = build_interaction_graph(tiny_interactions.interactions, tiny_interactions.catalogue.movie_ids)
    users, movies = built.graph.edges(etype=RATED)
    back_movies, back_users = built.graph.edges(etype=RATED_BY)
    assert torch.equal(users, back_users) and torch.equal(movies, back_movies)
    pairs = {(int(built.user_ids[u]), int(built.movie_ids[m])) for u, m in zip(users, movies)}
    assert (4, 10) in pairs and (3, 50) in pairs and len(pairs) == 17


def test_star_threshold_and_weights(tiny_interactions) -> None:
    weighting = EdgeWeighting(min_stars=3.5, star_power=1.0)
    built = build_interaction_graph(tiny_interactions.interactions, tiny_interactions.catalogue.movie_ids, weighting)
    assert built.graph.num_edges(RATED) == 14  # the 2.0, 3.0 and 1.0 star ratings are dropped
    weights = built.graph.edges[RATED].data[WEIGHT]
    assert torch.all(weights <= 1.0) and torch.isclose(weights.max(), torch.tensor(1.0))
    assert torch.equal(weights, built.graph.edges[RATED_BY].data[WEIGHT])


def test_recency_halves_the_weight_per_half_life() -> None:
    weighting = EdgeWeighting(recency_half_life_days=1.0)
    weights = weighting.weights(np.array([5.0, 5.0], dtype=np.float32), np.array([0, 86400]))
    assert np.allclose(weights, [0.5, 1.0])
