"""Batches per second and seconds to the best validation for one default PinSage training per data set."""

import argparse
import json
import os
import time
from pathlib import Path

import torch
from movielens_files import DATA_ROOT, load

from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-latest-small"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainingConfig(device=args.device)
    reports = {}
    for name in args.datasets:
        interactions, catalogue = load(Path(args.data_root) / name)
        started = time.perf_counter()
        prepared = prepare(interactions, catalogue, config)
        outcome = fit_pinsage(prepared, config)
        total = time.perf_counter() - started
        history = outcome.result.history
        reports[name] = {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "device": args.device,
            "torch_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "num_movies": int(prepared.split.num_movies),
            "num_ratings": int(len(interactions)),
            "batch_size": config.batch_size,
            "batches_per_epoch": config.batches_per_epoch,
            "epochs_run": len(history),
            "best_epoch": outcome.result.best_epoch,
            "batches_per_s": round(sum(r.batches_per_second for r in history) / len(history), 2),
            "seconds_to_best_validation": round(outcome.result.seconds_to_best, 1),
            "seconds_training_loop": round(outcome.result.seconds, 1),
            "seconds_total_with_walks_tuning_and_published_vectors": round(total, 1),
            "validation_hr@10": round(outcome.validation["hr@10"], 4),
            "test_hr@10": round(outcome.test["hr@10"], 4),
        }
    keys = list(next(iter(reports.values())))
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{name:>16}" for name in reports))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{str(r[key]):>16}" for r in reports.values()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
