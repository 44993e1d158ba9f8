"""Are "similar movies" any good? Each user's last rated movie's top 10 similar movies, scored against the movie
they rated next: what a movie page serves (PinSage's vectors blended with the stored co-rated lists,
recommender.ml.corating.blended_similarity), each part alone, and ItemKNN's and EASE's item-item weights, each
tuned on validation (the last train movie against the validation one). Writes bench/results/similar.*."""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, load
from scipy import sparse

from recommender.ml import corating, evaluation
from recommender.ml.experiment import BASELINE_GRIDS, fit_pinsage, prepare
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"


def queries(split: evaluation.Split, on: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, sparse.csr_matrix]:
    """(users, last movie before the held-out one, the held-out one, movies to leave out: the history)."""
    held = split.validation if on == "validation" else split.test
    users = np.flatnonzero(held >= 0)
    if on == "validation":
        train_users, train_movies = split.train[0], split.train[1]
        ends = np.searchsorted(train_users, np.arange(split.num_users), side="right") - 1
        last = train_movies[ends[users]]
    else:
        last = split.validation[users]
    history = split.history_matrix(include_validation=on == "test")[users]
    return users, last, held[users], history


def one_hot(movies: np.ndarray, num_movies: int) -> sparse.csr_matrix:
    ones = np.ones(len(movies), dtype=np.float32)
    return sparse.csr_matrix((ones, (np.arange(len(movies)), movies)), shape=(len(movies), num_movies))


def gains(scores: np.ndarray, history: sparse.csr_matrix, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return evaluation.per_user_gains(evaluation.top_k(scores, history, evaluation.K), truth)


def item_item(split: evaluation.Split, scorer: evaluation.Scorer, on: str) -> tuple[np.ndarray, np.ndarray]:
    """A linear scorer asked about one movie alone: its item-item row is that movie's similar list."""
    users, last, truth, history = queries(split, on)
    return gains(scorer(one_hot(last, split.num_movies), np.arange(len(users)), False), history, truth)


def tuned(split: evaluation.Split, name: str) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    factory = {"itemknn": evaluation.item_knn_scorer, "ease": evaluation.ease_scorer}[name]
    best = None
    for params in BASELINE_GRIDS[name]:
        scorer = factory(split, **params)
        hit, ndcg = item_item(split, scorer, "validation")
        if best is None or hit.mean() + ndcg.mean() > best[0]:
            best = (hit.mean() + ndcg.mean(), params, scorer)
    return best[1], item_item(split, best[2], "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    interactions, catalogue = load(Path(args.data_root) / args.dataset)
    rows, differences = [], {}
    for seed in range(args.seeds):
        started = time.perf_counter()
        config = TrainingConfig(seed=seed)
        prepared = prepare(interactions, catalogue, config)
        split = prepared.split
        vectors = fit_pinsage(prepared, config, tune=False).validation_embeddings  # train graph only
        users, last, truth, history = queries(split, "test")
        stored = corating.co_rated(split.history_matrix(include_validation=False), corating.STORED_PER_MOVIE)
        cosine = (one_hot(last, split.num_movies) @ stored.as_matrix()).toarray()
        model = vectors[last] @ vectors.T
        ours = gains(corating.blended_similarity(model, cosine), history, truth)
        row = {"seed": seed, "served": {"hr@10": ours[0].mean(), "ndcg@10": ours[1].mean()}}
        for name, scores in (("pinsage", model), ("co_rated", cosine)):
            alone = gains(scores, history, truth)
            row[name] = {"hr@10": alone[0].mean(), "ndcg@10": alone[1].mean()}
        for name in ("itemknn", "ease"):
            params, theirs = tuned(split, name)
            row[name] = {"params": params, "hr@10": theirs[0].mean(), "ndcg@10": theirs[1].mean()}
            for i, metric in enumerate(("hr@10", "ndcg@10")):
                differences.setdefault(name, {}).setdefault(metric, []).append(ours[i] - theirs[i])
        row["seconds"] = round(time.perf_counter() - started)
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
    comparisons = {
        name: {metric: evaluation.seed_and_user_bootstrap(per_seed) for metric, per_seed in by_metric.items()}
        for name, by_metric in differences.items()
    }
    report = {"dataset": args.dataset, "commit": commit, "seeds": rows, "served_minus": comparisons}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "similar.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    lines = [
        f"# Similar movies: the last rated movie's top 10 against the next rating ({args.dataset}, "
        f"{len(rows)} seeds, commit {commit})",
        "",
        "| list | HR@10 | NDCG@10 |",
        "|---|---|---|",
    ]
    labels = (
        ("served", "served: PinSage + 0.5 x co-rated (the movie page)"),
        ("pinsage", "PinSage vectors alone"),
        ("co_rated", "co-rated lists alone (20 a movie)"),
        ("itemknn", "ItemKNN, tuned"),
        ("ease", "EASE B, tuned"),
    )
    for name, label in labels:
        hits, ndcgs = [r[name]["hr@10"] for r in rows], [r[name]["ndcg@10"] for r in rows]
        lines.append(
            f"| {label} | {np.mean(hits):.4f} ± {np.std(hits):.4f} | {np.mean(ndcgs):.4f} ± {np.std(ndcgs):.4f} |"
        )
    lines += ["", "Served minus each (bootstrap over seeds and users, 95%):", ""]
    for name, by_metric in comparisons.items():
        cells = [f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]" for c in by_metric.values()]
        lines.append(f"- {name}: HR@10 {cells[0]}, NDCG@10 {cells[1]}")
    (RESULTS / "similar.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
