"""Which network should a training run keep: its best epoch, the mean weights of its three best epochs, or the
served rule (the mean where it validates better than the best epoch)? Validation only, split in two: each half
of the validation users chooses (the best epoch with patience 4, the three best, the rule), the other half
scores the choice, so the choice's own luck does not count. Writes bench/results/<output>.{json,md}."""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
from movielens_files import DATA_ROOT, commit_of, load

from recommender.ml import evaluation
from recommender.ml.data import Histories
from recommender.ml.embeddings import movie_embeddings
from recommender.ml.experiment import prepare
from recommender.ml.pinsage import PinSageNetwork
from recommender.ml.sampling import importance_neighborhoods
from recommender.ml.training import TrainingConfig, mean_weights, train

RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = 14  # trained whole; early stopping is then replayed on each half
PATIENCE = 4
AVERAGED = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--output", default="keep_rule", help="file stem under bench/results/")
    args = parser.parse_args()
    interactions, catalogue = load(DATA_ROOT / args.dataset)
    rows = []
    for seed in range(args.seeds):
        rows += run_seed(interactions, catalogue, seed)
        for row in rows[-2:]:
            print(json.dumps(row), flush=True)
    chosen = np.array([[r["best_epoch_alone"], r["mean_of_3"], r["rule"]] for r in rows])
    report = {
        "dataset": args.dataset,
        "commit": commit_of(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rows": rows,
        "mean": dict(zip(("best_epoch_alone", "mean_of_3", "rule"), chosen.mean(axis=0).tolist())),
        "mean_of_3_minus_best_epoch": _interval(chosen[:, 1] - chosen[:, 0]),
        "rule_minus_best_epoch": _interval(chosen[:, 2] - chosen[:, 0]),
        "mean_of_3_wins": int((chosen[:, 1] > chosen[:, 0]).sum()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{args.output}.md").write_text(markdown(report))
    print(markdown(report))


def run_seed(interactions: object, catalogue: object, seed: int) -> list[dict]:
    config = TrainingConfig().with_overrides({"seed": seed, "average_epochs": 1, "epochs": EPOCHS, "patience": 99})
    prepared = prepare(interactions, catalogue, config)
    split = prepared.split
    neighborhoods = importance_neighborhoods(prepared.train_graph, config.walk, config.seed)
    users, movies, stars, times = split.train
    sequences = Histories.of(users, movies, stars, times, split.num_users)

    def per_user(network: PinSageNetwork) -> np.ndarray:
        """HR@10 + NDCG@10 of each validation user under the served rule."""
        vectors = movie_embeddings(network, neighborhoods)
        ranker = evaluation.embedding_ranker(split, vectors, config.scoring)
        held, ranked = evaluation.ranked_lists(split, ranker, "validation", is_ranker=True, k=evaluation.K)
        hits, gains = evaluation.per_user_gains(ranked, split.validation[held])
        return hits + gains

    epochs: list[tuple[np.ndarray, dict]] = []

    def validate(network: PinSageNetwork) -> dict[str, float]:
        epochs.append((per_user(network), copy.deepcopy(network.state_dict())))
        return {"hr@10": 0.0, "ndcg@10": 0.0}

    network = train(neighborhoods, sequences, prepared.features, config, validate).network
    half = np.random.default_rng(1000 + seed).permutation(len(epochs[0][0])) < len(epochs[0][0]) // 2
    rows = []
    for name, choosing in (("first half chooses", half), ("second half chooses", ~half)):
        scoring = ~choosing
        keys = [float(g[choosing].mean()) for g, _ in epochs]
        best, seen = 0, len(keys)
        for epoch, key in enumerate(keys):
            if key > keys[best] + config.min_improvement:
                best = epoch
            if epoch - best >= PATIENCE:
                seen = epoch + 1
                break
        top = sorted(range(seen), key=lambda e: -keys[e])[:AVERAGED]
        network.load_state_dict(mean_weights([epochs[e][1] for e in top]))
        mean_gains = per_user(network)
        alone, mean = float(epochs[best][0][scoring].mean()), float(mean_gains[scoring].mean())
        rows.append(
            {
                "seed": seed,
                "split": name,
                "best_epoch": best + 1,
                "averaged": [e + 1 for e in top],
                "best_epoch_alone": alone,
                "mean_of_3": mean,
                "rule": mean if float(mean_gains[choosing].mean()) > keys[best] else alone,
            }
        )
    return rows


def _interval(differences: np.ndarray) -> dict[str, float]:
    """Mean and a 95% bootstrap interval over the (seed, half) pairs."""
    draws = np.random.default_rng(0).choice(differences, size=(10_000, len(differences))).mean(axis=1)
    return {
        "mean": float(differences.mean()),
        "low": float(np.quantile(draws, 0.025)),
        "high": float(np.quantile(draws, 0.975)),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Which network a run keeps ({report['dataset']}, validation only, commit {report['commit']})",
        "",
        "Each half of the validation users chooses, the other half scores (HR@10 + NDCG@10 of the served rule):",
        "",
        "| seed | who chooses | best epoch | averaged | best epoch alone | mean of 3 | rule (mean if it validates better) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['seed']} | {r['split']} | {r['best_epoch']} | {r['averaged']} | {r['best_epoch_alone']:.4f} | "
        f"{r['mean_of_3']:.4f} | {r['rule']:.4f} |"
        for r in report["rows"]
    ]
    m, a, r = report["mean"], report["mean_of_3_minus_best_epoch"], report["rule_minus_best_epoch"]
    lines += [
        "",
        f"Mean: best epoch alone {m['best_epoch_alone']:.4f}, mean of 3 {m['mean_of_3']:.4f}, rule {m['rule']:.4f}. "
        f"Mean of 3 minus best epoch {a['mean']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}] "
        f"(ahead in {report['mean_of_3_wins']} of {len(report['rows'])}); rule minus best epoch "
        f"{r['mean']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] (95%, bootstrap over seed and half).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
