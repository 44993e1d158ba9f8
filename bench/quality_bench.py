"""Full-ranking leave-last-out quality of PinSage beside tuned baselines; writes bench/results/quality.*"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from movielens_files import DATA_ROOT, load
from recommender.experiment import fit_baselines, fit_pinsage, prepare
from recommender.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@20", "coverage@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig")
    parser.add_argument("--output", default="quality", help="file stem under bench/results/")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    config_base = {**TrainingConfig().as_dict(), **json.loads(args.config)}
    report = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": config_base, "datasets": {}}
    for name in args.datasets:
        interactions, catalogue = load(Path(args.data_root) / name)
        prepared = prepare(interactions, catalogue, TrainingConfig.from_dict(config_base))
        started = time.perf_counter()
        baselines = fit_baselines(prepared.split)
        baseline_seconds = time.perf_counter() - started
        runs = []
        for seed in range(args.seeds):
            config = TrainingConfig.from_dict({**config_base, "seed": seed})
            outcome = fit_pinsage(prepare(interactions, catalogue, config), config,
                                  lambda r: print(f"{name} seed {seed} epoch {r.epoch}: loss {r.loss:.4f} "
                                                  f"val HR@10 {r.validation['hr@10']:.4f}", flush=True))
            runs.append({"seed": seed, "validation": outcome.validation, "test": outcome.test,
                         "best_epoch": outcome.result.best_epoch, "seconds": outcome.result.seconds,
                         "scoring": vars(outcome.scoring),
                         "history": [{"epoch": r.epoch, "loss": r.loss, "val_hr@10": r.validation["hr@10"]}
                                     for r in outcome.result.history]})
        report["datasets"][name] = {"baselines": baselines, "baseline_seconds": baseline_seconds, "pinsage": runs}
        save(report, args.output)  # after each data set, so a long run keeps what it finished
    print(format_table(report))


def save(report: dict, stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2, default=float))
    (RESULTS / f"{stem}.md").write_text(format_table(report) + "\n")
    plot_curves(report, RESULTS / f"{stem}_curves.png")


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def format_table(report: dict) -> str:
    lines = []
    for name, data in report["datasets"].items():
        lines += [f"\n### {name} (test, full ranking; PinSage mean ± sd over {len(data['pinsage'])} seeds)\n",
                  "| model | val HR@10 | " + " | ".join(m.upper() for m in METRICS) + " |",
                  "|---" * (len(METRICS) + 2) + "|"]
        runs = data["pinsage"]
        lines.append("| PinSage | " + mean_sd([r["validation"]["hr@10"] for r in runs]) + " | "
                     + " | ".join(mean_sd([r["test"][m] for r in runs]) for m in METRICS) + " |")
        for baseline, result in data["baselines"].items():
            lines.append(f"| {baseline} {result['params']} | {result['validation']['hr@10']:.4f} | "
                         + " | ".join(f"{result['test'][m]:.4f}" for m in METRICS) + " |")
    return "\n".join(lines)


def plot_curves(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2 * len(report["datasets"]), figsize=(6 * len(report["datasets"]), 3.5),
                                squeeze=False)
    axes = axes[0]
    for column, (name, data) in enumerate(report["datasets"].items()):
        loss_axis, hr_axis = axes[2 * column], axes[2 * column + 1]
        for run in data["pinsage"]:
            epochs = [h["epoch"] for h in run["history"]]
            loss_axis.plot(epochs, [h["loss"] for h in run["history"]], label=f"seed {run['seed']}")
            hr_axis.plot(epochs, [h["val_hr@10"] for h in run["history"]], label=f"seed {run['seed']}")
        hr_axis.axhline(data["baselines"]["ease"]["validation"]["hr@10"], color="k", linestyle="--", label="EASE")
        loss_axis.set_title(f"{name}: training loss")
        hr_axis.set_title(f"{name}: validation HR@10")
        for axis in (loss_axis, hr_axis):
            axis.set_xlabel("epoch")
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
