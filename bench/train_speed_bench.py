"""Batches per second and seconds to the best validation HR@10 for one PinSage training on ml-100k."""
import argparse
import json
import os
import time
from pathlib import Path

import torch

from movielens_files import DATA_ROOT, load
from recommender.experiment import fit_pinsage, prepare
from recommender.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainingConfig(device=args.device)
    interactions, catalogue = load(Path(args.data_root) / "ml-100k")
    prepared = prepare(interactions, catalogue, config)
    started = time.perf_counter()
    outcome = fit_pinsage(prepared, config)
    total = time.perf_counter() - started
    history = outcome.result.history
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": args.device, "torch_threads": args.threads,
        "cpu_count": os.cpu_count(), "batch_size": config.batch_size, "batches_per_epoch": config.batches_per_epoch,
        "epochs_run": len(history), "best_epoch": outcome.result.best_epoch,
        "batches_per_s": round(sum(r.batches_per_second for r in history) / len(history), 1),
        "seconds_to_best_validation": round(outcome.result.seconds_to_best, 1),
        "seconds_training_loop": round(outcome.result.seconds, 1), "seconds_total_with_final_evaluation": round(total, 1),
        "best_validation_hr@10": round(outcome.validation["hr@10"], 4), "test_hr@10": round(outcome.test["hr@10"], 4),
    }
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:{width}}  {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
