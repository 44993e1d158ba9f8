"""How far validation HR@10 moves between runs that differ only by their seed, on one data snapshot: the noise
the publish gate's tolerance (PUBLISH_TOLERANCE) must let through. Writes bench/results/gate.json and gate.md."""

import argparse
import itertools
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, load

from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    # Read before training: the code that runs is the code loaded now, whatever is committed meanwhile.
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    interactions, catalogue = load(Path(args.data_root) / args.dataset)
    runs = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        config = TrainingConfig(seed=seed)
        outcome = fit_pinsage(prepare(interactions, catalogue, config), config)
        runs.append({"seed": seed, "validation": outcome.validation, "seconds": round(time.perf_counter() - started)})
        print(f"seed {seed}: validation HR@10 {outcome.validation['hr@10']:.4f} ({runs[-1]['seconds']} s)", flush=True)
    hr = np.array([r["validation"]["hr@10"] for r in runs])
    # A candidate as good as the live model (another seed) is below it by this much, pair by pair.
    shortfalls = [hr[live] - hr[new] for live, new in itertools.permutations(range(len(hr)), 2)]
    report = {
        "dataset": args.dataset,
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
        "hr@10_mean": round(float(hr.mean()), 4),
        "hr@10_std": round(float(hr.std(ddof=1)), 4),
        "largest_shortfall": round(float(max(shortfalls)), 4),
        "shortfall_p95": round(float(np.percentile(shortfalls, 95)), 4),
        # Two runs' difference has sqrt(2) times one run's spread; two of those let through 95% of equal pairs.
        "suggested_tolerance": round(float(2 * np.sqrt(2) * hr.std(ddof=1)), 4),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Seed-to-seed spread of validation HR@10 ({args.dataset}, {len(runs)} seeds, one snapshot)",
        "",
        "| seed | val HR@10 | val NDCG@10 | seconds |",
        "|---|---|---|---|",
        *(
            f"| {r['seed']} | {r['validation']['hr@10']:.4f} | {r['validation']['ndcg@10']:.4f} | {r['seconds']} |"
            for r in runs
        ),
        "",
        f"mean {report['hr@10_mean']}, standard deviation {report['hr@10_std']}; a candidate as good as the live"
        f" model (another seed) fell short of it by up to {report['largest_shortfall']} (95th percentile"
        f" {report['shortfall_p95']}); 2 x sqrt(2) x sd = {report['suggested_tolerance']}.",
    ]
    (RESULTS / "gate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
