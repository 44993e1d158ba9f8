"""Fit PinSage and the baselines on one leave-last-out split and report comparable metrics (no Django)."""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import torch

from recommender.ml import corating, evaluation
from recommender.ml.config import EdgeWeighting
from recommender.ml.data import Catalogue, Histories, Interactions
from recommender.ml.embeddings import movie_embeddings
from recommender.ml.features import MovieFeatures, build_movie_features
from recommender.ml.graph import InteractionGraph, build_interaction_graph
from recommender.ml.pinsage import PinSageNetwork
from recommender.ml.sampling import Neighborhoods, importance_neighborhoods
from recommender.ml.sasrec import sasrec_scorer
from recommender.ml.scoring import ScoringConfig, top_neighbors
from recommender.ml.training import EpochRecord, TrainingConfig, TrainingResult, train, validation_key

if TYPE_CHECKING:
    from recommender.ml.artifact import ModelArtifact

MIN_USERS = 2
MIN_RATINGS = 10


class NotEnoughData(Exception):
    """Too few ratings to learn from; the message says what is missing."""


@dataclass(frozen=True)
class Prepared:
    interactions: Interactions
    catalogue: Catalogue
    split: evaluation.Split
    train_graph: InteractionGraph  # train ratings only: what the model may learn from
    features: MovieFeatures  # with train rating counts as the degree feature
    edges: EdgeWeighting

    def full_graph(self) -> InteractionGraph:
        """Every rating: what published embeddings are computed over. Built when publishing, after training,
        so the two graphs are never in memory together (at 25M ratings each is a few GB)."""
        return build_interaction_graph(self.interactions, self.catalogue.movie_ids, self.edges)


@dataclass
class Outcome:
    result: TrainingResult
    validation: dict[str, float]
    test: dict[str, float]
    embeddings: npt.NDArray[np.float32]  # (num_movies, hidden_dim) over the full graph
    scoring: ScoringConfig  # the serving rule's settings chosen on validation
    validation_embeddings: npt.NDArray[np.float32]  # (num_movies, hidden_dim) over the train graph: what was evaluated
    neighborhoods: Neighborhoods  # the train graph's importance neighbourhoods the network was trained over


def check_enough_data(interactions: Interactions) -> None:
    num_users = len(np.unique(interactions.user_ids))
    if len(interactions) < MIN_RATINGS or num_users < MIN_USERS:
        raise NotEnoughData(
            f"not enough data: {len(interactions)} ratings by {num_users} users "
            f"(need at least {MIN_RATINGS} ratings by {MIN_USERS} users)"
        )
    counts = np.unique(interactions.user_ids, return_counts=True)[1]
    if not (counts >= 3).any():
        raise NotEnoughData("not enough data: no user has the 3 ratings needed to hold out validation and test")


def prepare(interactions: Interactions, catalogue: Catalogue, config: TrainingConfig) -> Prepared:
    check_enough_data(interactions)
    order = np.argsort(catalogue.movie_ids)
    if not np.array_equal(order, np.arange(len(order))):
        raise ValueError("catalogue.movie_ids must be sorted")
    user_ids = np.unique(interactions.user_ids)
    users = np.searchsorted(user_ids, interactions.user_ids)
    movies = np.searchsorted(catalogue.movie_ids, interactions.movie_ids)
    split = evaluation.leave_last_out(
        users,
        movies,
        interactions.stars,
        interactions.timestamps,
        len(user_ids),
        len(catalogue.movie_ids),
        config.eval_users,
        config.seed,
    )
    train_users, train_movies, train_stars, train_times = split.train
    train = Interactions(user_ids[train_users], catalogue.movie_ids[train_movies], train_stars, train_times)
    features = build_movie_features(
        catalogue.titles,
        catalogue.years,
        catalogue.genres,
        tags=catalogue.tags_of(list(range(len(catalogue.titles)))) if config.use_tags else None,
    )
    features = features.with_degrees(np.bincount(train_movies, minlength=len(catalogue.movie_ids)))
    return Prepared(
        interactions,
        catalogue,
        split,
        build_interaction_graph(train, catalogue.movie_ids, config.edges),
        features,
        config.edges,
    )


def fit_pinsage(
    prepared: Prepared, config: TrainingConfig, on_epoch: Callable[[EpochRecord], None] | None = None, tune: bool = True
) -> Outcome:
    """Trains on the train split, early-stopping on the served rule's validation score; tunes the rule on
    validation; scores test once; computes the published vectors over every rating."""
    neighborhoods = importance_neighborhoods(prepared.train_graph, config.walk, config.seed)
    users, movies, stars, times = prepared.split.train
    sequences = Histories.of(users, movies, stars, times, prepared.split.num_users)

    def validate(network: PinSageNetwork) -> dict[str, float]:
        vectors = movie_embeddings(network, neighborhoods)
        return evaluation.evaluate(
            prepared.split,
            evaluation.embedding_ranker(prepared.split, vectors, config.scoring),
            "validation",
            is_ranker=True,
        )

    result = train(neighborhoods, sequences, prepared.features, config, validate, on_epoch)
    vectors = movie_embeddings(result.network, neighborhoods)
    if tune:
        scoring, validation = tune_scoring(prepared.split, vectors, config.scoring)
    else:
        scoring, validation = config.scoring, validate(result.network)
    ranker = evaluation.embedding_ranker(prepared.split, vectors, scoring)
    test = evaluation.evaluate(prepared.split, ranker, "test", is_ranker=True)
    _, served = evaluation.ranked_lists(prepared.split, ranker, "test", is_ranker=True, k=evaluation.K)
    test["diversity@10"] = evaluation.list_diversity(served, vectors)  # for the admin's comparison of runs
    published = published_embeddings(result.network, prepared, config)
    return Outcome(result, validation, test, published, scoring, vectors, neighborhoods)


def validate_other_model(prepared: Prepared, neighborhoods: Neighborhoods, other: "ModelArtifact") -> dict[str, float]:
    """Another run's model (the live one) scored on this split's validation exactly as this run's network was:
    its weights over this split's train graph and degrees, its own serving rule. Like with like: the same
    users, ratings and held-out movies, only the model differs. Movies it never saw get a zero id vector."""
    config = other.training_config()
    catalogue = prepared.catalogue
    features = build_movie_features(
        catalogue.titles,
        catalogue.years,
        catalogue.genres,
        vocabulary=tuple(other.vocabulary),
        genre_names=tuple(other.genre_names),
        tags=catalogue.tags_of(list(range(len(catalogue.titles)))) if config.use_tags else None,
    ).with_degrees(np.bincount(prepared.split.train[1], minlength=len(catalogue.movie_ids)))
    network = PinSageNetwork(features, config.hidden_dim, config.walk.num_layers, 0.0, config.use_id_embedding)
    weights = dict(other.state_dict)
    if config.use_id_embedding:  # its id rows, moved to this catalogue's order
        rows = dict(zip(np.asarray(other.movie_ids).tolist(), range(len(other.movie_ids))))
        trained = torch.as_tensor(weights["projector.ids.weight"])
        ids = torch.zeros(len(catalogue.movie_ids), trained.shape[1], dtype=trained.dtype)
        at = [(i, rows[int(m)]) for i, m in enumerate(catalogue.movie_ids) if int(m) in rows]
        if at:
            ids[[i for i, _ in at]] = trained[[r for _, r in at]]
        weights["projector.ids.weight"] = ids
    network.load_state_dict(weights)
    vectors = movie_embeddings(network, neighborhoods)
    ranker = evaluation.embedding_ranker(prepared.split, vectors, other.training_config().scoring)
    return evaluation.evaluate(prepared.split, ranker, "validation", is_ranker=True)


def published_embeddings(
    network: PinSageNetwork, prepared: Prepared, config: TrainingConfig
) -> npt.NDArray[np.float32]:
    """Vectors over every rating: neighbourhoods and degree features of the full graph, the trained weights."""
    full = importance_neighborhoods(prepared.full_graph(), config.walk, config.seed)
    counts = np.bincount(
        np.searchsorted(prepared.catalogue.movie_ids, prepared.interactions.movie_ids),
        minlength=len(prepared.catalogue.movie_ids),
    )
    trained = network.projector.features
    network.projector.features = trained.with_degrees(counts)
    try:
        return movie_embeddings(network, full)
    finally:
        network.projector.features = trained


SCORING_GRID: list[dict[str, Any]] = [  # keyword arguments of ScoringConfig
    {"recency_half_life": h, "neighbors_per_item": n, "min_stars": s}
    for h in (2.0, 5.0, 20.0)
    for n in (20, 50, 100)
    for s in (0.0, 3.5)
]
SHARPNESS_GRID = (0.0, 0.1, 0.2, 0.3)  # 0: the plain sum of similarities


def tune_scoring(
    split: evaluation.Split, vectors: npt.NDArray[np.float32], base: ScoringConfig
) -> tuple[ScoringConfig, dict[str, float]]:
    """The serving rule's knobs chosen on validation (HR@10 + NDCG@10), never on test: the grid at the base's
    kernel, then the kernel alone at the best of the grid (earlier wins ties)."""
    neighbors = top_neighbors(vectors, max(v["neighbors_per_item"] for v in SCORING_GRID))

    def scored(candidate: ScoringConfig) -> tuple[float, ScoringConfig, dict[str, float]]:
        ranker = evaluation.embedding_ranker(split, vectors, candidate, neighbors)
        metrics = evaluation.evaluate(split, ranker, "validation", is_ranker=True)
        return validation_key(metrics), candidate, metrics

    best = max((scored(replace(base, **values)) for values in SCORING_GRID), key=lambda found: found[0])
    kernels = [scored(replace(best[1], sharpness=s)) for s in SHARPNESS_GRID if s != best[1].sharpness]
    best = max([best, *kernels], key=lambda found: found[0])
    return best[1], best[2]


# Each baseline's grid: keyword arguments of its scorer, one dict a point.
Grids = dict[str, list[dict[str, float]]]
BASELINE_GRIDS: Grids = {
    "most_rated": [{}],
    "itemknn": [{"num_neighbors": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 10.0, 50.0)],
    "ease": [{"l2": l2} for l2 in (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)],
    # EASE's weights on the product's recency-weighted history (one inversion per l2).
    "ease_recency": [
        {"l2": l2, "recency_half_life": h, "min_stars": s}
        for l2 in (20.0, 50.0, 100.0, 200.0, 500.0)
        for h in (2.0, 5.0, 20.0)
        for s in (0.0, 3.5)
    ],
}
# A training run re-tunes its baselines on this short grid (a point of each full grid), so that it stays
# quick on large catalogues; bench/quality uses the full grids above.
RUN_BASELINE_GRIDS: Grids = {
    "most_rated": [{}],
    "itemknn": [{"num_neighbors": 200, "shrink": 10.0}],
    "ease": [{"l2": 100.0}],
    "ease_recency": [{"l2": 200.0, "recency_half_life": 5.0, "min_stars": 0.0}],
}
# Compared in bench/quality only: SASRec trains a network per grid point, too slow beside every training run.
BENCH_ONLY_GRIDS: Grids = {
    "recent_popularity": [{"days": d} for d in (7.0, 30.0, 90.0, 365.0)],
    "itemknn_recency": [
        {"num_neighbors": n, "shrink": 10.0, "recency_half_life": h, "min_stars": s}
        for n in (100, 200)
        for h in (2.0, 5.0, 20.0)
        for s in (0.0, 3.5)
    ],
    # The setting of the full-softmax paper's ML-1M runs (dropout 0.2, 200 ratings, 2 blocks, 64 dims), and 128
    # dims, which lifted ml-latest-small's validation HR@10 from 0.125 to 0.139 on seed 0 (dropout 0.5: 0.126);
    # early stopped on validation. A fit takes minutes on two cores.
    "sasrec": [{"dropout": 0.2, "max_length": 200}, {"dropout": 0.2, "max_length": 200, "hidden_dim": 128}],
    # What signed-in pages serve before a model is live: the serving rule over stored co-rated lists, exactly
    # as served (no tuning here: the settings are the product's), so "not worse than popular" is measured.
    "co_rated_served": [{}],
}
RANKERS = {"co_rated_served"}  # serve a top k themselves (per-source cap and all) rather than scores


def _co_rated_served(split: evaluation.Split) -> evaluation.Ranker:
    found = corating.co_rated(split.history_matrix(include_validation=False), corating.STORED_PER_MOVIE)
    return evaluation.embedding_ranker(split, None, corating.SERVED_SCORING, (found.indices, found.scores))


def _sasrec(split: evaluation.Split, **params: Any) -> evaluation.Scorer:
    return sasrec_scorer(split, **params)


_BASELINES: dict[str, Callable[..., evaluation.Scorer | evaluation.Ranker]] = {
    "most_rated": evaluation.most_rated_scorer,
    "itemknn": evaluation.item_knn_scorer,
    "ease": evaluation.ease_scorer,
    "ease_recency": evaluation.ease_recency_scorer,
    "sasrec": _sasrec,
    "recent_popularity": evaluation.recent_popularity_scorer,
    "itemknn_recency": evaluation.item_knn_recency_scorer,
    "co_rated_served": _co_rated_served,
}


# A baseline's best point so far: (validation key, params, its scorer, validation metrics).
_Best = tuple[float, dict[str, float], evaluation.Scorer | evaluation.Ranker, dict[str, float]]


def fit_baselines(
    split: evaluation.Split,
    grids: Grids = BASELINE_GRIDS,
    test_lists: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each baseline tuned on validation (HR@10 + NDCG@10, as PinSage is), then scored once on test;
    `test_lists`, when given, receives each baseline's (users, ranked test lists) for paired comparisons."""
    report: dict[str, dict[str, Any]] = {}
    for name, grid in grids.items():
        started = time.perf_counter()
        best: _Best | None = None
        is_ranker = name in RANKERS
        for params in grid:
            scorer = _BASELINES[name](split, **params)
            validation = evaluation.evaluate(split, scorer, "validation", is_ranker=is_ranker)
            key = validation_key(validation)
            if best is None or key > best[0]:
                best = (key, params, scorer, validation)
        _, params, scorer, validation = cast(_Best, best)  # a grid has at least one point
        if is_ranker:  # the top 10 as served at 10, recall from the list served at 20
            users, ranked = evaluation.ranked_lists(split, scorer, "test", is_ranker=True, k=evaluation.K)
            test = evaluation.evaluate(split, scorer, "test", is_ranker=True)
        else:
            users, ranked = evaluation.ranked_lists(split, scorer, "test", k=evaluation.RECALL_K)
            test = evaluation.metrics_of(ranked, split.test[users], split.num_movies)
        report[name] = {
            "params": params,
            "validation": validation,
            "test": test,
            "seconds": round(time.perf_counter() - started, 1),  # its grid, tuning and test together
        }
        if test_lists is not None:
            test_lists[name] = (users, ranked)
    return report
