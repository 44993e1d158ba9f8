"""Diversity on demand: what maximal marginal relevance re-ranking (recommender.ml.diversity.mmr) of the served
personal top 10 costs in accuracy and gains in diversity. Per seed: its own temporal leave-last-out split, PinSage
trained and its serving rule tuned as a run does (experiment.fit_pinsage); each held-out user's served top 50
(select_history then rank, the per-source cap as served at 10, so the first 10 are exactly the served list)
re-ranked to 10 at each weight over the PinSage vectors. Weight chosen on validation, reported on test, paired
per user against weight 0. Writes bench/results/diversity.{json,md,png}; each trained seed's vectors and pools
are kept under var/bench/diversity_seeds/, so a stopped run goes on where it stopped and the weights can change
without training again."""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from movielens_files import DATA_ROOT, commit_of, load

from recommender.ml import evaluation
from recommender.ml.diversity import intra_list_diversity, mmr
from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.scoring import ScoringConfig, rank, select_history, top_neighbors
from recommender.ml.training import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SEEDS_DIR = ROOT / "var" / "bench" / "diversity_seeds"
# 0.4, 0.6, 0.7 and 0.9 beyond the grid asked for: the curve bends between 0.5 and 0.7
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9)
POOL = 50  # served candidates re-ranked
K = evaluation.K
MAX_HR_LOSS = 0.005  # the recommended weight: the largest whose mean validation HR@10 loss stays within this
PER_USER = ("hr@10", "ndcg@10", "diversity_vectors", "diversity_genres")


def served_pool(
    split: evaluation.Split, vectors: npt.NDArray[np.float32], scoring: ScoringConfig, on: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(held-out users, their served top POOL (-1 padded), relevance monotone in that order). The per-source cap
    is a count, so the pool's first 10 are the served 10; the relevance is the running minimum of the fused
    scores, since the cap puts some higher-scored picks later and weight 0 must reproduce the served order."""
    held = split.test if on == "test" else split.validation
    users = np.flatnonzero(held >= 0)
    indices, similarities = top_neighbors(vectors, scoring.neighbors_per_item)
    histories = evaluation.subset_histories(evaluation.split_histories(split, on == "test", only_held_out=True), users)
    evidence = select_history(histories, scoring)
    ranked = rank(evidence, indices[evidence.movies], similarities[evidence.movies], histories, scoring, POOL)
    _, served = evaluation.ranked_lists(
        split, evaluation.embedding_ranker(split, vectors, scoring), on, is_ranker=True, k=K
    )
    assert np.array_equal(ranked.movies[:, :K], served), "the pool's first 10 must be the served list"
    relevance = np.minimum.accumulate(ranked.scores.astype(np.float64), axis=1)
    return users, ranked.movies, relevance


def genre_matrix(genres: list[list[str]]) -> npt.NDArray[np.float64]:
    """(num_movies, num_genres) 0/1, catalogue order (= movie index)."""
    names = sorted({g for movie in genres for g in movie})
    column = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(genres), len(names)))
    for row, movie in enumerate(genres):
        matrix[row, [column[g] for g in movie]] = 1.0
    return matrix


def genre_diversity(genres: npt.NDArray[np.float64]) -> float:
    """Mean Jaccard distance between the genre sets of a list's movies (two movies without genres: 0)."""
    n = len(genres)
    if n < 2:
        return 0.0
    shared = genres @ genres.T  # (n, n)
    sizes = np.diag(shared)
    union = sizes[:, None] + sizes[None, :] - shared
    distance = np.where(union > 0, 1.0 - shared / np.where(union > 0, union, 1.0), 0.0)
    return float(distance.sum() / (n * (n - 1)))


def reranked(
    pool: npt.NDArray[np.int64], relevance: npt.NDArray[np.float64], vectors: npt.NDArray[np.float32], weight: float
) -> tuple[npt.NDArray[np.int64], list[float]]:
    """Each user's top K after MMR at `weight` ((users, K), -1 padded) and the seconds each mmr call took."""
    tops = np.full((len(pool), K), -1, dtype=np.int64)
    seconds = []
    for row, (movies, scores) in enumerate(zip(pool, relevance)):
        movies, scores = movies[movies >= 0], scores[movies >= 0]
        started = time.perf_counter()
        order = mmr(scores, vectors[movies], K, weight)
        seconds.append(time.perf_counter() - started)
        tops[row, : len(order)] = movies[order]
    return tops, seconds


def measured(
    tops: npt.NDArray[np.int64],
    truth: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    genres: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[np.float64]]:
    """Per-user hit, NDCG and list diversity (PinSage cosine distance, genre Jaccard distance)."""
    hits, ndcg = evaluation.per_user_gains(tops, truth)
    lists = [top[top >= 0] for top in tops]
    return {
        "hr@10": hits,
        "ndcg@10": ndcg,
        "diversity_vectors": np.array([intra_list_diversity(vectors[top]) for top in lists]),
        "diversity_genres": np.array([genre_diversity(genres[top]) for top in lists]),
    }


def run_seed(directory: Path, config_base: dict, seed: int, commit: str, seeds_dir: Path) -> None:
    """Trains one seed and keeps what re-ranking needs (the vectors, genres, and each side's served pools), so
    the weights can change without training again."""
    interactions, catalogue = load(directory)
    config = TrainingConfig.from_dict({**config_base, "seed": seed})
    prepared = prepare(interactions, catalogue, config)
    split = prepared.split
    started = time.perf_counter()
    outcome = fit_pinsage(
        prepared,
        config,
        lambda r: print(f"seed {seed} epoch {r.epoch}: val HR@10 {r.validation['hr@10']:.4f}", flush=True),
    )
    vectors, scoring = outcome.validation_embeddings, outcome.scoring
    kept: dict[str, npt.NDArray] = {"vectors": vectors, "genres": genre_matrix(catalogue.genres)}
    for on in ("validation", "test"):
        users, pool, relevance = served_pool(split, vectors, scoring, on)
        held = split.test if on == "test" else split.validation
        kept.update({f"{on}_pool": pool, f"{on}_relevance": relevance, f"{on}_truth": held[users]})
    row = {
        "seed": seed,
        "commit": commit,
        "scoring": vars(scoring),
        "best_epoch": outcome.result.best_epoch,
        "train_seconds": time.perf_counter() - started,
        "served_test": outcome.test,
        "hidden_dim": int(vectors.shape[1]),
    }
    seeds_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(seeds_dir / f"seed{seed}.npz", **kept)
    written = seeds_dir / f"seed{seed}.json.part"
    written.write_text(json.dumps(row, indent=2))
    written.rename(seeds_dir / f"seed{seed}.json")  # last, so a seed with a row always has its pools


def scored_seed(seeds_dir: Path, seed: int) -> tuple[dict, dict[str, npt.NDArray[np.float64]]]:
    """One seed's pools re-ranked at every weight: (its row with the metrics, test per-user values by
    "metric@weight")."""
    row = json.loads((seeds_dir / f"seed{seed}.json").read_text())
    kept = np.load(seeds_dir / f"seed{seed}.npz")
    vectors, genres = kept["vectors"], kept["genres"]
    gains: dict[str, npt.NDArray[np.float64]] = {}
    call_seconds: list[float] = []
    for on in ("validation", "test"):
        row[on] = {}
        for weight in WEIGHTS:
            tops, seconds = reranked(kept[f"{on}_pool"], kept[f"{on}_relevance"], vectors, weight)
            if weight > 0:
                call_seconds += seconds
            per_user = measured(tops, kept[f"{on}_truth"], vectors, genres)
            row[on][str(weight)] = {
                **{name: float(values.mean()) for name, values in per_user.items()},
                "coverage@10": float(len(np.unique(tops[tops >= 0])) / len(vectors)),
            }
            if on == "test":
                gains.update({f"{name}@{weight}": values for name, values in per_user.items()})
    # Weight 0 is the served list: the HR@10 the trained run reported on test.
    assert abs(row["test"]["0.0"]["hr@10"] - row["served_test"]["hr@10"]) < 1e-9
    row["mmr_call_seconds"] = {
        "mean": float(np.mean(call_seconds)),
        "median": float(np.median(call_seconds)),
        "p99": float(np.percentile(call_seconds, 99)),
        "num_calls": len(call_seconds),
    }
    return row, gains


def aggregated(seeds_dir: Path, seeds: list[int]) -> dict:
    """Means over seeds, the recommended weight (chosen on validation) and test differences against weight 0,
    paired per user, bootstrapped over seeds then users."""
    rows, gains = zip(*(scored_seed(seeds_dir, s) for s in seeds))
    metrics = (*PER_USER, "coverage@10")
    means = {
        on: {
            str(w): {
                m: {
                    "mean": float(np.mean([r[on][str(w)][m] for r in rows])),
                    "sd": float(np.std([r[on][str(w)][m] for r in rows])),
                }
                for m in metrics
            }
            for w in WEIGHTS
        }
        for on in ("validation", "test")
    }
    baseline_hr = means["validation"]["0.0"]["hr@10"]["mean"]
    losses = [baseline_hr - means["validation"][str(w)]["hr@10"]["mean"] for w in WEIGHTS]
    # The largest weight with it and every smaller one within the loss: a lucky point past a drop does not count.
    within = [w for i, w in enumerate(WEIGHTS) if max(losses[: i + 1]) <= MAX_HR_LOSS]
    against = {
        str(w): {
            m: evaluation.seed_and_user_bootstrap([g[f"{m}@{w}"] - g[f"{m}@0.0"] for g in gains]) for m in PER_USER
        }
        for w in WEIGHTS
        if w > 0
    }
    return {
        "seeds": seeds,
        "commits": sorted({r["commit"] for r in rows}),
        "by_seed": rows,
        "means": means,
        "against_weight_0": against,
        "recommended_weight": max(within),
        "mmr_call_seconds_median": float(np.median([r["mmr_call_seconds"]["median"] for r in rows])),
    }


def synthetic_timing(num_candidates: int, dim: int) -> float:
    """Best per-call CPU seconds of mmr (k 10, weight 0.3) on random candidates: CPU time, since the wall clock
    of a shared machine counts other processes' turns."""
    generator = np.random.default_rng(0)
    scores = generator.random(num_candidates)
    vectors = generator.normal(size=(num_candidates, dim)).astype(np.float32)
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(200):
            mmr(scores, vectors, K, 0.3)
        best = min(best, (time.process_time() - started) / 200)
    return best


def interval(c: dict) -> str:
    return f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"


def format_table(report: dict) -> str:
    lines = []
    for name, data in report["datasets"].items():
        means, against, chosen = data["means"], data["against_weight_0"], data["recommended_weight"]
        lines += [
            f"\n### {name}: MMR over the served top {POOL}, re-ranked to {K} (mean ± sd over seeds "
            f"{', '.join(map(str, data['seeds']))}; commit {', '.join(data['commits'])})\n",
            "Test, history = train + validation. Each seed: its own split, PinSage trained and the serving rule tuned "
            "on validation (experiment.fit_pinsage); the pool is the served ranking at 50 with the per-source cap of "
            "the served 10, so its first 10 are the page's list, and MMR's relevance is the running minimum of the "
            "fused scores down that order (the cap moves some higher-scored picks later), so weight 0 is the served "
            "list exactly. Diversity: mean pairwise distance within a user's list, cosine over the PinSage vectors "
            "MMR itself uses, and Jaccard over genre sets (the catalogue's, which MMR never sees). Coverage@10: share "
            "of the catalogue in anyone's list (± sd over seeds; a whole-list figure, so no per-user interval).\n",
            "| weight | val HR@10 | HR@10 | NDCG@10 | diversity, vectors | diversity, genres | coverage@10 |",
            "|---|---|---|---|---|---|---|",
        ]
        for w in WEIGHTS:
            test = means["test"][str(w)]
            cells = [f"{test[m]['mean']:.4f} ± {test[m]['sd']:.4f}" for m in (*PER_USER, "coverage@10")]
            label = f"{w}" + (" (served)" if w == 0 else "") + (" **recommended**" if w == chosen else "")
            lines.append(
                f"| {label} | {means['validation'][str(w)]['hr@10']['mean']:.4f} | " + " | ".join(cells) + " |"
            )
        lines += [
            "",
            "Test differences against weight 0 (the served list), paired per user within a seed; 95% interval from "
            "a bootstrap over seeds then users:",
            "",
            "| weight | HR@10 | NDCG@10 | diversity, vectors | diversity, genres |",
            "|---|---|---|---|---|",
        ]
        for w, comparison in against.items():
            lines.append(f"| {w} | " + " | ".join(interval(comparison[m]) for m in PER_USER) + " |")
        val = means["validation"]
        lines += [
            "",
            f"Recommended default: weight {chosen}, the largest whose mean validation HR@10 (and every smaller "
            f"weight's) is within {MAX_HR_LOSS} of weight 0's (validation HR@10 by weight: "
            + ", ".join(f"{w}: {val[str(w)]['hr@10']['mean']:.4f}" for w in WEIGHTS)
            + ").",
            "",
            f"One mmr call on a real pool ({POOL} candidates, {data['by_seed'][0]['hidden_dim']} dims, k {K}): median "
            f"{data['mmr_call_seconds_median'] * 1e6:.0f} µs (wall clock); random candidates, CPU time, best of 5x200: "
            + ", ".join(f"{label} {seconds * 1e6:.0f} µs" for label, seconds in report["synthetic_timing"].items())
            + ".",
        ]
    if "ml-latest-small" not in report["datasets"]:
        lines += [
            "",
            "ml-latest-small not run: one PinSage fit there took 10 to 24 minutes (bench/results/quality_small.json), "
            "beyond this bench's budget of about 15 minutes of one core; `bench/diversity --datasets ml-latest-small` "
            "runs it.",
        ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = report["datasets"]
    figure, axes = plt.subplots(len(datasets), 2, figsize=(9, 3.6 * len(datasets)), squeeze=False)
    for row, (name, data) in enumerate(datasets.items()):
        test = data["means"]["test"]
        hr = [test[str(w)]["hr@10"]["mean"] for w in WEIGHTS]
        for axis, metric, label in (
            (axes[row][0], "diversity_vectors", "diversity (cosine distance, PinSage vectors)"),
            (axes[row][1], "diversity_genres", "diversity (Jaccard distance, genres)"),
        ):
            x = [test[str(w)][metric]["mean"] for w in WEIGHTS]
            axis.plot(x, hr, "o-", label="weight w")
            chosen = WEIGHTS.index(data["recommended_weight"])
            axis.plot(x[chosen], hr[chosen], "r*", markersize=14, label=f"recommended (w={WEIGHTS[chosen]})")
            for i, (w, xi, yi) in enumerate(zip(WEIGHTS, x, hr)):
                # Above and below in turn: the small weights sit close together.
                axis.annotate(
                    f"{w}", (xi, yi), textcoords="offset points", xytext=(-4, 7 if i % 2 else -13), fontsize=7
                )
            axis.legend(fontsize=7, loc="lower left")
            axis.set_xlabel(label)
            axis.set_ylabel("test HR@10")
            axis.set_title(f"{name}: MMR weight, mean of {len(data['seeds'])} seeds", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rerun seeds that already have results")
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config_base = {**TrainingConfig().as_dict(), **json.loads(args.config)}
    commit = commit_of()
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": commit,
        "settings": {"weights": WEIGHTS, "pool": POOL, "k": K, "max_validation_hr_loss": MAX_HR_LOSS},
        "config": config_base,
        "synthetic_timing": {
            f"{n} x {d}": synthetic_timing(n, d) for n, d in ((POOL, config_base["hidden_dim"]), (100, 64))
        },
        "datasets": {},
    }
    for name in args.datasets:
        seeds_dir = SEEDS_DIR / name
        for seed in range(args.seeds):
            if args.fresh or not (seeds_dir / f"seed{seed}.json").exists():
                run_seed(Path(args.data_root) / name, config_base, seed, commit, seeds_dir)
        report["datasets"][name] = aggregated(seeds_dir, list(range(args.seeds)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diversity.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "diversity.md").write_text(format_table(report).lstrip() + "\n")
    plot(report, RESULTS / "diversity.png")
    print(format_table(report))


if __name__ == "__main__":
    main()
