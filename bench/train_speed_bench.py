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
from recommender.ml.training import TrainingConfig, batch_size_for

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
    parser.add_argument(
        "--as-run",
        action="store_true",
        help="with --database-url: train the way the product does, as a training run (manage.py "
        "train_recommender's path: the run's short baseline grids first, then PinSage, then its artifact), "
        "reporting the run's own figures; the run is left there to publish (bench/serving)",
    )
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig")
    parser.add_argument("--output", default="train_speed", help="file stem under bench/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.as_run:
        if not args.database_url:
            parser.error("--as-run needs --database-url")
        report = train_as_run(args.database_url, {"device": args.device, **json.loads(args.config)}, args.threads)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2))
        return
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
            "batch_size": batch_size_for(config, int(prepared.split.num_movies)),
            "batches_per_epoch": config.batches_per_epoch,
            "epochs_run": len(history),
            "best_epoch": outcome.result.best_epoch,
            "averaged_epochs": outcome.result.averaged_epochs,
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


def use_database(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()


def train_as_run(url: str, overrides: dict, threads: int) -> dict:
    """One training run through recommender.runs, as `manage.py train_recommender` makes it, on `url`."""
    use_database(url)
    from recommender import runs
    from recommender.models import TrainingRun

    run = runs.create_training_run(overrides)
    started = time.perf_counter()
    print(f"run {run.id}: reading ratings, then the baselines, then PinSage", flush=True)

    def on_epoch(row: dict) -> None:
        print(
            f"run {run.id} epoch {row['epoch']}: {row['seconds']:.0f} s, val HR@10 {row['validation']['hr@10']:.4f}, "
            f"{time.perf_counter() - started:.0f} s since start, "
            f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
            flush=True,
        )

    runs.train_model(run.id, on_epoch)
    total = time.perf_counter() - started
    run = TrainingRun.objects.get(id=run.id)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise SystemExit(f"run {run.id} {run.status}: {run.failure_reason}")
    baselines_s = sum(b.get("seconds", 0.0) for b in run.baseline_metrics.values())
    epochs_s = sum(row["seconds"] for row in run.history)
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "run_id": run.id,
        "device": run.device,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "num_movies": run.num_movies,
        "num_users": run.num_users,
        "num_ratings": run.num_ratings,
        "evaluated_users": int(run.test_metrics.get("num_users", 0)),
        "epochs_run": len(run.history),
        "best_epoch": run.best_epoch,
        "batches_per_s": round(sum(r["batches_per_second"] for r in run.history) / len(run.history), 2),
        "seconds_to_best_validation": round(run.seconds_to_best, 1),
        "seconds_in_epochs": round(epochs_s, 1),
        "seconds_baselines": round(baselines_s, 1),
        # Reading, preparing (walks), the baselines, training, tuning the rule, published vectors, artifact.
        "seconds_whole_run": round(total, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "pinsage": {"validation": run.validation_metrics, "test": run.test_metrics},
        "baselines": run.baseline_metrics,
    }
    print(f"{'':28} {'val HR@10':>9} {'val NDCG':>9} {'test HR@10':>10} {'test NDCG':>9} {'seconds':>8}")
    rows = [("PinSage (served rule)", report["pinsage"], report["seconds_to_best_validation"])]
    rows += [(name, result, result.get("seconds", 0.0)) for name, result in run.baseline_metrics.items()]
    for name, result, seconds in rows:
        validation, test = result["validation"], result["test"]
        print(
            f"{name:28} {validation['hr@10']:>9.4f} {validation['ndcg@10']:>9.4f} {test['hr@10']:>10.4f} "
            f"{test['ndcg@10']:>9.4f} {seconds:>8.0f}"
        )
    for key in ("seconds_to_best_validation", "seconds_baselines", "seconds_whole_run", "peak_memory_mb"):
        print(f"{key}: {report[key]}")
    return report


def read_database(url: str) -> tuple[object, object]:
    """The arrays a training run reads (chunked SQL, no model objects), from the database at `url`."""
    use_database(url)
    from movies import selectors

    return selectors.ratings_for_training(), selectors.movie_catalogue()


if __name__ == "__main__":
    main()
