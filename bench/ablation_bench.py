"""Ablations of the PinSage training config on validation only (tuned serving rule), each against the first
variant by a paired bootstrap over users; appends to bench/results/ablations.json and rewrites ablations.md."""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, load

from recommender.ml import evaluation
from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--folds",
        type=int,
        default=1,
        help="temporal folds: fold f trains and validates with each user's last f ratings removed, so every "
        "user brings `folds` held-out items and the comparison's variance drops (a run per fold and seed)",
    )
    parser.add_argument(
        "--variants", required=True, help="JSON object: name -> TrainingConfig overrides; the first is the reference"
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    interactions, catalogue = load(Path(args.data_root) / args.dataset)
    variants = json.loads(args.variants)
    known = set(TrainingConfig().as_dict())
    for name, overrides in variants.items():  # from_dict ignores unknown keys (old stored configs); a sweep must not
        if set(overrides) - known:
            parser.error(f"variant {name!r}: unknown TrainingConfig fields {sorted(set(overrides) - known)}")
    rows, reference = [], None
    folds = [evaluation.drop_last_ratings(interactions, f) for f in range(args.folds)]
    user_ids = np.unique(interactions.user_ids)
    for name, overrides in variants.items():
        hits, ndcgs, metrics, seconds = [], [], [], []
        for data in folds:
            for seed in range(args.seeds):
                config = TrainingConfig.from_dict({**TrainingConfig().as_dict(), **overrides, "seed": seed})
                prepared = prepare(data, catalogue, config)
                outcome = fit_pinsage(prepared, config)
                ranker = evaluation.embedding_ranker(prepared.split, outcome.validation_embeddings, outcome.scoring)
                users, ranked = evaluation.ranked_lists(prepared.split, ranker, "validation", is_ranker=True)
                hit, ndcg = evaluation.per_user_gains(ranked, prepared.split.validation[users])
                # Per user of the whole data set (NaN where a fold holds nothing out for them), so folds line up.
                rows_of = np.searchsorted(user_ids, np.unique(data.user_ids)[users])
                hits.append(np.full(len(user_ids), np.nan))
                ndcgs.append(np.full(len(user_ids), np.nan))
                hits[-1][rows_of], ndcgs[-1][rows_of] = hit, ndcg
                metrics.append(outcome.validation)
                seconds.append(outcome.result.seconds_to_best)
        everywhere = ~np.isnan(np.array(hits)).any(axis=0)
        hits, ndcgs = [h[everywhere] for h in hits], [n[everywhere] for n in ndcgs]
        hit, ndcg = np.mean(hits, axis=0), np.mean(ndcgs, axis=0)
        if reference is None:
            reference = (hit, ndcg)
        row = {
            "dataset": args.dataset,
            "variant": name,
            "overrides": overrides,
            "seeds": args.seeds,
            "folds": args.folds,
            "val_hr@10": float(hit.mean()),
            "val_ndcg@10": float(ndcg.mean()),
            "hr_vs_reference": evaluation.paired_bootstrap(hit, reference[0]),
            "ndcg_vs_reference": evaluation.paired_bootstrap(ndcg, reference[1]),
            "seconds_to_best": float(np.mean(seconds)),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        rows.append(row)
        print(format_row(row), flush=True)
        save(row)


def format_row(row: dict) -> str:
    hr, ndcg = row["hr_vs_reference"], row["ndcg_vs_reference"]
    return (
        f"| {row['dataset']} | {row['variant']} | {json.dumps(row['overrides'])} | {row['seeds']}"
        f"{' x ' + str(row['folds']) + ' folds' if row.get('folds', 1) > 1 else ''} | "
        f"{row['val_hr@10']:.4f} | {hr['difference']:+.4f} [{hr['low']:+.4f}, {hr['high']:+.4f}] | "
        f"{row['val_ndcg@10']:.4f} | {ndcg['difference']:+.4f} [{ndcg['low']:+.4f}, {ndcg['high']:+.4f}] | "
        f"{row['seconds_to_best']:.0f} |"
    )


def save(row: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "ablations.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append(row)
    path.write_text(json.dumps(rows, indent=2))
    header = [
        "# Ablations (validation only, tuned serving rule; differences against the first variant of "
        "each batch, paired bootstrap over users, 95% interval)",
        "",
        "| data | variant | overrides | seeds | val HR@10 | vs reference | val NDCG@10 | vs reference | s to best |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    (RESULTS / "ablations.md").write_text("\n".join(header + [format_row(r) for r in rows]) + "\n")


if __name__ == "__main__":
    main()
