"""Batches per second and seconds to the best validation for one default PinSage training per data set."""

import argparse
import json
import os
import resource
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
    parser.add_argument(
        "--database-url",
        help="instead of files: train on the ratings of this database (mysql://...), read as arrays the way a "
        "training run reads them (movies.selectors), e.g. after bench/import of a generated 25M set",
    )
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig")
    parser.add_argument("--output", default="train_speed", help="file stem under bench/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainingConfig.from_dict({**TrainingConfig().as_dict(), "device": args.device, **json.loads(args.config)})
    reports = {}
    sources = [(f"database {args.database_url.rsplit('/', 1)[-1]}", None)] if args.database_url else []
    sources += [(name, Path(args.data_root) / name) for name in ([] if args.database_url else args.datasets)]
    for name, folder in sources:
        read_started = time.perf_counter()
        interactions, catalogue = load(folder) if folder else read_database(args.database_url)
        read_s = time.perf_counter() - read_started
        print(f"{name}: {len(interactions):,} ratings read in {read_s:.0f} s", flush=True)
        started = time.perf_counter()
        prepared = prepare(interactions, catalogue, config)
        print(f"{name}: prepared in {time.perf_counter() - started:.0f} s", flush=True)
        outcome = fit_pinsage(
            prepared,
            config,
            lambda r, name=name: print(
                f"{name} epoch {r.epoch}: {r.seconds:.0f} s, val HR@10 {r.validation['hr@10']:.4f}, "
                f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
                flush=True,
            ),
        )
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
            "evaluated_users": int(outcome.test.get("num_users", 0)),
            "seconds_reading_ratings": round(read_s, 1),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    keys = list(next(iter(reports.values())))
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{name:>16}" for name in reports))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{str(r[key]):>16}" for r in reports.values()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(reports, indent=2))


def read_database(url: str) -> tuple[object, object]:
    """The arrays a training run reads (chunked SQL, no model objects), from the database at `url`."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()
    from movies import selectors

    return selectors.ratings_for_training(), selectors.movie_catalogue()


if __name__ == "__main__":
    main()
