"""Full-ranking leave-last-out quality of PinSage beside tuned baselines, several seeds each with its own split
(same-second ratings in that seed's random order), intervals over seeds and users; writes
bench/results/<stem>.{json,md} and <stem>_curves.png."""

import argparse
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, commit_of, load

from recommender.ml import evaluation
from recommender.ml.experiment import BASELINE_GRIDS, BENCH_ONLY_GRIDS, fit_baselines, fit_pinsage, prepare
from recommender.ml.training import TrainingConfig, validation_key

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@20", "coverage@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        help="run these seeds only (say, one process each on a machine with cores to spare); the table covers "
        "every seed below --seeds that has finished",
    )
    parser.add_argument("--fresh", action="store_true", help="rerun seeds that already have results")
    parser.add_argument(
        "--keep-baselines",
        action="store_true",
        help="with --fresh: train PinSage again on each seed but keep the seed's stored baseline rows and per-user "
        "gains, once the split is checked to be the stored one (popularity refitted gives the stored per-user hits)",
    )
    parser.add_argument(
        "--refit",
        nargs="+",
        default=[],
        help="with --keep-baselines: these baselines' grid points other than the stored choice are fitted; the "
        "better on validation is kept (a grid that has grown since)",
    )
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig")
    parser.add_argument("--output", default="quality", help="file stem under bench/results/")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 0)) or os.cpu_count() or 1)
    config_base = {**TrainingConfig().as_dict(), **json.loads(args.config)}
    commit = commit_of()
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": commit,
        "config": config_base,
        "datasets": {},
    }
    for name in args.datasets:
        seeds_dir = RESULTS / f"{args.output}_seeds" / name
        for seed in args.only_seeds if args.only_seeds is not None else range(args.seeds):
            if args.fresh or not (seeds_dir / f"seed{seed}.json").exists():
                run_seed(
                    Path(args.data_root) / name,
                    name,
                    config_base,
                    seed,
                    commit,
                    seeds_dir,
                    _stored(seeds_dir, seed, args.refit) if args.keep_baselines else None,
                )
            # After each seed, so a stopped run keeps what it finished and a later one goes on from there.
            report["datasets"][name] = aggregated(seeds_dir, args.seeds, config_base)
            save(report, args.output)
    print(format_table(report))


@dataclass(frozen=True)
class StoredBaselines:
    """A seed's baselines as an earlier run of the bench fitted them on the same split."""

    row: dict  # that seed's json: commit, baselines, baseline_seconds
    gains: dict[str, np.ndarray]  # its npz without PinSage's
    refit: list[str]  # baselines whose other grid points are fitted again


def _stored(seeds_dir: Path, seed: int, refit: list[str]) -> StoredBaselines:
    row = json.loads((seeds_dir / f"seed{seed}.json").read_text())
    with np.load(seeds_dir / f"seed{seed}.npz") as stored:
        gains = {key: stored[key] for key in stored.files if not key.startswith("pinsage_")}
    return StoredBaselines(row, gains, refit)


def run_seed(
    directory: Path,
    name: str,
    config_base: dict,
    seed: int,
    commit: str,
    seeds_dir: Path,
    stored: StoredBaselines | None = None,
) -> None:
    """One seed: its own split (the seed orders same-second ratings), the baselines tuned on its validation,
    PinSage trained on it; every model's served top 10 on that seed's test, per user, written to
    `seeds_dir`/seed<N>.json (the rows) and .npz (per-user gains, for the paired intervals). With `stored`, the
    baselines are that earlier run's on this same split (checked), but for the grid points of `stored.refit`."""
    interactions, catalogue = load(directory)
    config = TrainingConfig.from_dict({**config_base, "seed": seed})
    prepared = prepare(interactions, catalogue, config)
    split = prepared.split
    started = time.perf_counter()
    grids = {**BASELINE_GRIDS, **BENCH_ONLY_GRIDS, "sasrec": [{**g, "seed": seed} for g in BENCH_ONLY_GRIDS["sasrec"]]}
    if stored is None:
        baselines, baseline_gains, baseline_commit = *_fitted(split, grids), commit
    else:
        baselines, baseline_gains = _kept(split, grids, stored)
        baseline_commit = stored.row.get("baseline_commit", stored.row["commit"])
        if stored.refit:
            baseline_commit += f", {', '.join(stored.refit)} refitted at {commit}"
    # A kept baseline counts the time it took to fit, in the row that fitted it, and the split check here.
    baseline_seconds = time.perf_counter() - started + (stored.row["baseline_seconds"] if stored else 0.0)
    outcome = fit_pinsage(
        prepared,
        config,
        lambda r: print(
            f"{name} seed {seed} epoch {r.epoch}: loss {r.loss:.4f} "
            f"val HR@10 {r.validation['hr@10']:.4f} ({r.seconds:.0f} s)",
            flush=True,
        ),
    )
    vectors, scoring = outcome.validation_embeddings, outcome.scoring
    users, ranked = evaluation.ranked_lists(  # the served top 10, as the page asks for it
        split, evaluation.embedding_ranker(split, vectors, scoring), "test", is_ranker=True, k=evaluation.K
    )
    assert np.array_equal(users, baseline_gains["users"])
    gains = dict(baseline_gains)
    gains["pinsage_hr@10"], gains["pinsage_ndcg@10"] = evaluation.per_user_gains(ranked, split.test[users])
    seeds_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(seeds_dir / f"seed{seed}.npz", **gains)
    row = {
        "commit": commit,
        "baseline_commit": baseline_commit,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seed": seed,
        "baselines": baselines,
        "baseline_seconds": baseline_seconds,
        "pinsage": pinsage_row(seed, config, split, outcome, vectors, scoring),
    }
    written = seeds_dir / f"seed{seed}.json.part"
    written.write_text(json.dumps(row, indent=2, default=float))
    written.rename(seeds_dir / f"seed{seed}.json")  # last, so a seed with rows always has its gains


def _fitted(split: evaluation.Split, grids: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """The baselines tuned on validation, their rows and per-user test gains ("users": the users, in order)."""
    lists: dict = {}
    rows = fit_baselines(split, grids, test_lists=lists)
    gains = {}
    for baseline, (users, ranked) in lists.items():
        gains["users"] = users
        gains[f"{baseline}_hr@10"], gains[f"{baseline}_ndcg@10"] = evaluation.per_user_gains(ranked, split.test[users])
    return rows, gains


def _kept(split: evaluation.Split, grids: dict, stored: StoredBaselines) -> tuple[dict, dict[str, np.ndarray]]:
    """The stored baselines, after checking the split: popularity fitted on it again must give each held-out user
    the stored hit and gain (it reads the train ratings and the test movie of every user). Each baseline of
    `stored.refit` also gets its other grid points fitted; the better on validation is kept."""
    rows, gains = {name: dict(row) for name, row in stored.row["baselines"].items()}, dict(stored.gains)
    check, check_gains = _fitted(split, {"most_rated": grids["most_rated"]})
    same = np.array_equal(check_gains["users"], gains["users"]) and all(
        np.array_equal(check_gains[key], gains[key]) for key in ("most_rated_hr@10", "most_rated_ndcg@10")
    )
    if not same or check["most_rated"]["test"] != rows["most_rated"]["test"]:
        raise SystemExit(
            f"seed {stored.row['seed']}: the stored baselines were fitted on another split; run without --keep-baselines"
        )
    for baseline in stored.refit:
        others = [point for point in grids[baseline] if point != rows[baseline]["params"]]
        if not others:
            continue
        found, found_gains = _fitted(split, {baseline: others})
        if validation_key(found[baseline]["validation"]) > validation_key(rows[baseline]["validation"]):
            seconds = rows[baseline]["seconds"] + found[baseline]["seconds"]
            rows[baseline] = {**found[baseline], "seconds": seconds}
            gains.update({key: value for key, value in found_gains.items() if key != "users"})
        else:
            rows[baseline]["seconds"] += found[baseline]["seconds"]
    return rows, gains


def aggregated(seeds_dir: Path, num_seeds: int, config_base: dict) -> dict:
    """The finished seeds below `num_seeds`: rows, baselines' means, and PinSage minus each baseline paired per
    user within each seed, bootstrapped over seeds then users."""
    rows = [
        json.loads((seeds_dir / f"seed{seed}.json").read_text())
        for seed in range(num_seeds)
        if (seeds_dir / f"seed{seed}.json").exists()
    ]
    if not rows:
        return {
            "baselines": {},
            "baselines_by_seed": [],
            "baseline_seconds": 0.0,
            "pinsage": [],
            "against_baselines": {},
        }
    gains = [np.load(seeds_dir / f"seed{row['seed']}.npz") for row in rows]
    comparisons = {
        baseline: {
            metric: evaluation.seed_and_user_bootstrap(
                [g[f"pinsage_{metric}"] - g[f"{baseline}_{metric}"] for g in gains]
            )
            for metric in ("hr@10", "ndcg@10")
        }
        for baseline in rows[0]["baselines"]
    }
    return {
        "seeds": [row["seed"] for row in rows],
        "commits": sorted({row["commit"] for row in rows}),
        "baseline_commits": sorted({row.get("baseline_commit", row["commit"]) for row in rows}),
        "baselines": summarised([row["baselines"] for row in rows]),
        "baselines_by_seed": [row["baselines"] for row in rows],
        "baseline_seconds": sum(row["baseline_seconds"] for row in rows),
        "pinsage": [row["pinsage"] for row in rows],
        "against_baselines": comparisons,
    }


def pinsage_row(
    seed: int, config: TrainingConfig, split: object, outcome: object, vectors: object, scoring: object
) -> dict:
    uncapped = replace(scoring, max_per_source=0)
    return {
        "seed": seed,
        "config": replace(config, scoring=scoring).as_dict(),
        "validation": outcome.validation,
        "test": outcome.test,
        "validation_uncapped": evaluation.evaluate(
            split, evaluation.embedding_ranker(split, vectors, uncapped), "validation", is_ranker=True
        ),
        "test_uncapped": evaluation.evaluate(
            split, evaluation.embedding_ranker(split, vectors, uncapped), "test", is_ranker=True
        ),
        "source_share": evaluation.source_shares(split, vectors, scoring),
        "source_share_uncapped": evaluation.source_shares(split, vectors, uncapped),
        "best_epoch": outcome.result.best_epoch,
        "averaged_epochs": outcome.result.averaged_epochs,
        "seconds": outcome.result.seconds,
        "seconds_to_best": outcome.result.seconds_to_best,
        "scoring": vars(scoring),
        "history": [
            {
                "epoch": r.epoch,
                "loss": r.loss,
                "val_hr@10": r.validation["hr@10"],
                "val_ndcg@10": r.validation["ndcg@10"],
            }
            for r in outcome.result.history
        ],
    }


def summarised(by_seed: list[dict]) -> dict:
    """Each baseline's mean and sd over seeds, with the parameters each seed's validation chose."""
    summary = {}
    for name in by_seed[0]:
        results = [seed[name] for seed in by_seed]
        summary[name] = {
            "params": [r["params"] for r in results],
            **{
                part: {m: float(np.mean([r[part][m] for r in results])) for m in METRICS}
                for part in ("validation", "test")
            },
            "test_sd": {m: float(np.std([r["test"][m] for r in results])) for m in METRICS},
        }
    return summary


def save(report: dict, stem: str) -> None:
    """Written whole then renamed, so two processes running different seeds never leave half a file."""
    RESULTS.mkdir(exist_ok=True)
    for path, text in (
        (RESULTS / f"{stem}.json", json.dumps(report, indent=2, default=float)),
        (RESULTS / f"{stem}.md", format_table(report) + "\n"),
    ):
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.write_text(text)
        partial.rename(path)
    plot_curves(report, RESULTS / f"{stem}_curves.png")


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def format_table(report: dict) -> str:
    lines = []
    for name, data in report["datasets"].items():
        runs = data["pinsage"]
        if not runs:
            continue
        commits = ", ".join(data.get("commits", [report.get("commit", "?")]))
        baseline_commits = data.get("baseline_commits", data.get("commits", []))
        if baseline_commits and baseline_commits != data.get("commits"):
            commits += f"; baselines fitted at {'; '.join(baseline_commits)}"
        lines += [
            f"\n### {name} (test, full ranking; mean ± sd over {len(runs)} seeds, each with its own split: seeds "
            f"{', '.join(str(r['seed']) for r in runs)}; commit {commits})\n",
            "| model | val HR@10 | " + " | ".join(m.upper() for m in METRICS) + " |",
            "|---" * (len(METRICS) + 2) + "|",
        ]
        for label, val_key, test_key in (
            ("PinSage, served (per-source cap)", "validation", "test"),
            ("PinSage, no cap", "validation_uncapped", "test_uncapped"),
        ):
            lines.append(
                f"| {label} | "
                + mean_sd([r[val_key]["hr@10"] for r in runs])
                + " | "
                + " | ".join(mean_sd([r[test_key][m] for r in runs]) for m in METRICS)
                + " |"
            )
        for baseline, result in data["baselines"].items():
            params = result["params"]
            shown = [{k: v for k, v in p.items() if k != "seed"} for p in params]
            chosen = json.dumps(shown[0]) if all(p == shown[0] for p in shown) else "per seed: " + json.dumps(shown)
            lines.append(
                f"| {baseline} {chosen} | {result['validation']['hr@10']:.4f} | "
                + " | ".join(f"{result['test'][m]:.4f} ± {result['test_sd'][m]:.4f}" for m in METRICS)
                + " |"
            )
        lines += [
            "",
            "Served PinSage (top 10 as the page asks for it) minus each baseline on test: each seed has its own "
            "split and tie order; paired per user within a seed, and a bootstrap that resamples seeds and then users "
            "within each, so the 95% interval includes seed-to-seed variance (share of resamples where PinSage is ahead):",
            "",
            "| baseline | HR@10 difference | NDCG@10 difference |",
            "|---|---|---|",
        ]
        for baseline, comparison in data["against_baselines"].items():
            cells = [
                f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}], p {c['p_better']:.2f}"
                for c in (comparison["hr@10"], comparison["ndcg@10"])
            ]
            lines.append(f"| {baseline} | {cells[0]} | {cells[1]} |")
        lines += [
            "",
            "Users with at least 5 liked movies: share of their top 20 whose main contributor is their "
            "most frequent one (mean; share of users over one half):",
            "",
            f"- with the cap: {mean_sd([r['source_share']['mean_top_source_share'] for r in runs])}; "
            f"{mean_sd([r['source_share']['users_over_half'] for r in runs])}",
            f"- without: {mean_sd([r['source_share_uncapped']['mean_top_source_share'] for r in runs])}; "
            f"{mean_sd([r['source_share_uncapped']['users_over_half'] for r in runs])}",
            "",
            f"Seconds: PinSage to best validation {mean_sd([r['seconds_to_best'] for r in runs])}, "
            f"whole loop {mean_sd([r['seconds'] for r in runs])}; all baseline grids "
            f"{data['baseline_seconds']:.0f} s.",
        ]
    return "\n".join(lines)


def plot_curves(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, 3 * len(report["datasets"]), figsize=(9 * len(report["datasets"]), 3.5), squeeze=False
    )
    axes = axes[0]
    for column, (name, data) in enumerate(report["datasets"].items()):
        loss_axis, hr_axis, seed_axis = axes[3 * column : 3 * column + 3]
        _plot_seeds(seed_axis, name, data)
        for run in data["pinsage"]:
            epochs = [h["epoch"] for h in run["history"]]
            loss_axis.plot(epochs, [h["loss"] for h in run["history"]], label=f"seed {run['seed']}")
            hr_axis.plot(epochs, [h["val_hr@10"] for h in run["history"]], label=f"seed {run['seed']}")
        for baseline, style in (("ease", "--"), ("ease_recency", ":")):
            if baseline in data["baselines"]:
                hr_axis.axhline(
                    data["baselines"][baseline]["validation"]["hr@10"], color="k", linestyle=style, label=baseline
                )
        loss_axis.set_title(f"{name}: training loss", fontsize=10)
        hr_axis.set_title(f"{name}: val HR@10", fontsize=10)
        for axis in (loss_axis, hr_axis):
            axis.set_xlabel("epoch")
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _plot_seeds(axis: object, name: str, data: dict) -> None:
    """Test NDCG@10 seed by seed: served PinSage and the two baselines strongest on average, so a lead that only
    some seeds show is plain to see."""
    seeds = [run["seed"] for run in data["pinsage"]]
    strongest = sorted(data["baselines"], key=lambda b: -data["baselines"][b]["test"]["ndcg@10"])[:2]
    rows = [("PinSage, served", [run["test"]["ndcg@10"] for run in data["pinsage"]])]
    rows += [(b, [by_seed[b]["test"]["ndcg@10"] for by_seed in data["baselines_by_seed"]]) for b in strongest]
    for (label, values), marker in zip(rows, ("o", "s", "^")):
        axis.plot(seeds, values, marker=marker, label=label)
    axis.set_title(f"{name}: test NDCG@10", fontsize=10)
    axis.set_xlabel("seed (each its own split)")
    axis.set_xticks(seeds)
    axis.legend(fontsize=7)


if __name__ == "__main__":
    main()
