"""Do hidden movies ("not interested") help as a negative signal at serving time? Hidden is simulated as the
movies a user rated at most 2 (or 1.5) stars in the history the list is made from; variants of the served rule
penalise or drop candidates near them, with any weight chosen on validation, scored on the leave-last-out test
against the rule as served, paired per user, over seeds and users. Writes bench/results/negative.{json,md}."""

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, commit_of, load

from recommender.ml import evaluation
from recommender.ml.data import Histories
from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.scoring import (
    Evidence,
    Ranked,
    ScoringConfig,
    _top_per_user,
    rank,
    select_history,
    top_neighbors,
)
from recommender.ml.training import TrainingConfig, validation_key

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = (2.0, 1.5)  # at most this many stars: hidden
WEIGHTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # of the penalty, on the scale of one 5-star newest rating's part
DROP_NEIGHBOURS = (1, 3, 5, 10, 20, 50)
SERVED = "(a) served"


@dataclass(frozen=True)
class Setting:
    """One side of the split: the held-out users' histories, what the served rule makes of them, the truth."""

    histories: Histories
    truth: np.ndarray  # (num_users,) held-out movie index
    evidence: Evidence
    candidates: Ranked  # every candidate per user by score, before the cap
    served: np.ndarray  # (num_users, 10) as served at 10


def setting(
    split: evaluation.Split, on: str, neighbors: tuple[np.ndarray, np.ndarray], scoring: ScoringConfig
) -> Setting:
    held = split.validation if on == "validation" else split.test
    users = np.flatnonzero(held >= 0)
    histories = evaluation.subset_histories(evaluation.split_histories(split, on == "test", True), users)
    evidence = select_history(histories, scoring)
    ids, sims = neighbors[0][evidence.movies], neighbors[1][evidence.movies]
    depth = scoring.neighbors_per_item * int(np.bincount(evidence.users).max())  # every candidate
    uncapped = replace(scoring, max_per_source=0)
    return Setting(
        histories,
        held[users],
        evidence,
        rank(evidence, ids, sims, histories, uncapped, depth),
        rank(evidence, ids, sims, histories, scoring, evaluation.K).movies,
    )


def hidden_of(histories: Histories, threshold: float) -> list[np.ndarray]:
    """Each user's movies rated at most `threshold` stars: the simulated "not interested"."""
    return [
        histories.movies[start:end][histories.stars[start:end] <= threshold]
        for start, end in zip(histories.starts[:-1], histories.starts[1:])
    ]


def similarity_to_hidden(
    found: Setting, hidden: list[np.ndarray], vectors: np.ndarray, scoring: ScoringConfig, how: str
) -> np.ndarray:
    """(num_users, depth) each candidate's max or sum over the user's hidden movies of its similarity as the
    score counts it (the kernel when the rule has one), 0 where none is hidden."""
    movies = found.candidates.movies
    out = np.zeros(movies.shape)
    for user, movies_hidden in enumerate(hidden):
        valid = movies[user] >= 0
        if not len(movies_hidden) or not valid.any():
            continue
        sims = vectors[movies[user, valid]] @ vectors[movies_hidden].T  # (num_candidates, num_hidden)
        if scoring.sharpness > 0:
            sims = np.exp((sims.astype(np.float64) - 1.0) / scoring.sharpness)
        out[user, valid] = sims.max(axis=1) if how == "max" else sims.sum(axis=1)
    return out


def near_hidden(found: Setting, hidden: list[np.ndarray], neighbors: np.ndarray, n: int) -> np.ndarray:
    """(num_users, depth) whether a candidate is among one of the user's hidden movies' n nearest."""
    movies = found.candidates.movies
    out = np.zeros(movies.shape, dtype=bool)
    for user, movies_hidden in enumerate(hidden):
        if len(movies_hidden):
            out[user] = np.isin(movies[user], neighbors[movies_hidden, :n])
    return out


def served_at_10(found: Setting, scores: np.ndarray, keep: np.ndarray, scoring: ScoringConfig) -> np.ndarray:
    """The candidates kept, by the scores given, through the serving rule's own per-source cap."""
    candidates = found.candidates
    users, position = np.nonzero((candidates.movies >= 0) & keep)
    capped = _top_per_user(
        users,
        candidates.movies[users, position],
        scores[users, position],
        candidates.sources[users, position],
        len(candidates.movies),
        evaluation.K,
        scoring.max_per_source,
    )
    return capped.movies


def without_hidden_evidence(
    found: Setting, hidden: list[np.ndarray], neighbors: tuple[np.ndarray, np.ndarray], scoring: ScoringConfig
) -> np.ndarray:
    """(d) hidden movies are not evidence at all (as on the site, where a hidden movie is never rated), unless
    that leaves a user none; they stay out of the list as before."""
    evidence = found.evidence
    is_hidden = np.array([m in set(hidden[u].tolist()) for u, m in zip(evidence.users, evidence.movies)], dtype=bool)
    left = np.bincount(evidence.users[~is_hidden], minlength=len(hidden))
    keep = ~is_hidden | (left[evidence.users] == 0)
    chosen = Evidence(evidence.users[keep], evidence.movies[keep], evidence.weights[keep], evidence.liked[keep])
    ids, sims = neighbors[0][chosen.movies], neighbors[1][chosen.movies]
    return rank(chosen, ids, sims, found.histories, scoring, evaluation.K).movies


def variant_lists(
    found: Setting,
    threshold: float,
    vectors: np.ndarray,
    neighbors: tuple[np.ndarray, np.ndarray],
    scoring: ScoringConfig,
) -> dict[str, dict[str, np.ndarray]]:
    """Each variant's lists at 10 for each of its settings: {variant: {setting: (num_users, 10)}}."""
    hidden = hidden_of(found.histories, threshold)
    scores = found.candidates.scores.astype(np.float64)
    everyone = np.ones(scores.shape, dtype=bool)
    lists: dict[str, dict[str, np.ndarray]] = {SERVED: {"": found.served}}
    for how in ("max", "sum"):
        similarity = similarity_to_hidden(found, hidden, vectors, scoring, how)
        lists[f"(b) score - w x {how} similarity to hidden"] = {
            f"w={w}": served_at_10(found, scores - w * similarity, everyone, scoring) for w in WEIGHTS
        }
    lists["(c) drop a hidden movie's top n"] = {
        f"n={n}": served_at_10(found, scores, ~near_hidden(found, hidden, neighbors[0], n), scoring)
        for n in DROP_NEIGHBOURS
    }
    lists["(d) hidden are not evidence"] = {"": without_hidden_evidence(found, hidden, neighbors, scoring)}
    return lists


def metrics(ranked: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    hits, ndcg = evaluation.per_user_gains(ranked, truth)
    return {"hr@10": float(hits.mean()), "ndcg@10": float(ndcg.mean())}


def run_seed(dataset: str, seed: int, overrides: dict) -> dict:
    """One seed: its split, PinSage and its tuned rule; per threshold, each variant's setting chosen on
    validation and its test gains per user (kept under "_gains" for the paired intervals)."""
    started = time.perf_counter()
    interactions, catalogue = load(DATA_ROOT / dataset)
    config = TrainingConfig.from_dict({**TrainingConfig().as_dict(), **overrides, "seed": seed})
    prepared = prepare(interactions, catalogue, config)
    outcome = fit_pinsage(prepared, config)
    scoring, vectors = outcome.scoring, outcome.validation_embeddings  # what validation and test score
    neighbors = top_neighbors(vectors, max(scoring.neighbors_per_item, *DROP_NEIGHBOURS))
    sides = {on: setting(prepared.split, on, neighbors, scoring) for on in ("validation", "test")}
    if not np.isclose(metrics(sides["test"].served, sides["test"].truth)["hr@10"], outcome.test["hr@10"]):
        raise AssertionError("the served test lists are not the ones fit_pinsage scored")
    row: dict = {"dataset": dataset, "seed": seed, "scoring": scoring.__dict__, "thresholds": {}, "_gains": {}}
    for threshold in THRESHOLDS:
        chosen = variant_lists(sides["validation"], threshold, vectors, neighbors, scoring)
        tested = variant_lists(sides["test"], threshold, vectors, neighbors, scoring)
        hidden = hidden_of(sides["test"].histories, threshold)
        found: dict = {"test_users_with_hidden": float(np.mean([len(h) > 0 for h in hidden])), "variants": {}}
        row["_gains"][threshold] = {"with_hidden": np.array([len(h) > 0 for h in hidden])}
        for name, by_setting in chosen.items():
            scored = {key: metrics(ranked, sides["validation"].truth) for key, ranked in by_setting.items()}
            best = max(scored, key=lambda key: validation_key(scored[key]))
            found["variants"][name] = {
                "setting": best,
                "validation": scored[best],
                "validation_all": scored,
                "test": metrics(tested[name][best], sides["test"].truth),
            }
            row["_gains"][threshold][name] = evaluation.per_user_gains(tested[name][best], sides["test"].truth)
        row["thresholds"][threshold] = found
    row["seconds"] = round(time.perf_counter() - started)
    return row


def compared(rows: list[dict], threshold: float, name: str, only_with_hidden: bool) -> dict[str, dict]:
    """The variant minus served on test, per user, bootstrap over seeds and users."""
    out = {}
    for i, metric in enumerate(("hr@10", "ndcg@10")):
        per_seed = []
        for row in rows:
            gains = row["_gains"][threshold]
            difference = gains[name][i] - gains[SERVED][i]
            per_seed.append(difference[gains["with_hidden"]] if only_with_hidden else difference)
        out[metric] = evaluation.seed_and_user_bootstrap(per_seed)
    return out


def summary(dataset: str, rows: list[dict]) -> tuple[dict, list[str]]:
    report: dict = {"seeds": [{k: v for k, v in r.items() if k != "_gains"} for r in rows], "vs_served": {}}
    min_stars = sorted({r["scoring"]["min_stars"] for r in rows})
    lines = [
        f"## {dataset}: {len(rows)} seeds (commit {commit_of()})",
        "",
        f"The tuned rule's min_stars per seed: {[r['scoring']['min_stars'] for r in rows]}: "
        + (
            "low ratings are evidence (weight (stars / 5) ** star_power, never credited), so as served a movie "
            "rated 1 star pulls its neighbours up, at a fifth of the weight of a 5-star rating of the same moment."
            if min_stars == [0.0]
            else "(where 3.5, low ratings are not evidence unless a user has no other)."
        ),
    ]
    for threshold in THRESHOLDS:
        share = np.mean([r["thresholds"][threshold]["test_users_with_hidden"] for r in rows])
        lines += [
            "",
            f"### hidden = rated <= {threshold} stars ({share:.0%} of test users have one)",
            "",
            "| variant | setting per seed (validation) | val HR@10 | HR@10 | NDCG@10 | HR@10 vs (a) | NDCG@10 vs (a) "
            "| HR@10 vs (a), users with a hidden movie |",
            "|---|---|---|---|---|---|---|---|",
        ]
        report["vs_served"][threshold] = {}
        for name in rows[0]["thresholds"][threshold]["variants"]:
            found = [r["thresholds"][threshold]["variants"][name] for r in rows]
            cells = [np.mean([f[part][m] for f in found]) for part, m in (("validation", "hr@10"), ("test", "hr@10"))]
            ndcg = np.mean([f["test"]["ndcg@10"] for f in found])
            settings = ", ".join(f["setting"] for f in found if f["setting"]) or "-"
            if name == SERVED:
                lines.append(f"| {name} | - | {cells[0]:.4f} | {cells[1]:.4f} | {ndcg:.4f} | | | |")
                continue
            everyone, with_hidden = compared(rows, threshold, name, False), compared(rows, threshold, name, True)
            report["vs_served"][threshold][name] = {"all_users": everyone, "users_with_hidden": with_hidden}
            text = [
                f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"
                for c in (everyone["hr@10"], everyone["ndcg@10"], with_hidden["hr@10"])
            ]
            lines.append(
                f"| {name} | {settings} | {cells[0]:.4f} | {cells[1]:.4f} | {ndcg:.4f} | {text[0]} | {text[1]} "
                f"| {text[2]} |"
            )
    return report, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig (a quick check: epochs=1)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json, no runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = commit_of()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "negative.json").read_text()))
        return
    settings = {
        "seeds": args.seeds,
        "thresholds": THRESHOLDS,
        "weights": WEIGHTS,
        "drop_neighbours": DROP_NEIGHBOURS,
        "config_overrides": json.loads(args.config),
    }
    path = RESULTS / "negative.json"
    # A dataset run on its own (ml-latest-small takes longer) keeps the others' results beside it.
    report: dict = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    for dataset in args.datasets:
        rows = []
        for seed in range(args.seeds):
            row = run_seed(dataset, seed, json.loads(args.config))
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "_gains"}, default=float), flush=True)
        found, lines = summary(dataset, rows)
        report["datasets"][dataset] = {
            "commit": commit,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "settings": settings,
            **found,
            "markdown": lines,
        }
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    write_markdown(report)


def verdict(report: dict) -> list[str]:
    """Whether any variant helps, read off the test intervals (HR@10 and NDCG@10, every user)."""
    helps, hurts = [], []
    for dataset, found in report["datasets"].items():
        for threshold, variants in found["vs_served"].items():
            for name, by_users in variants.items():
                cells = by_users["all_users"]
                label = f"{name} (<= {threshold} stars, {dataset})"
                if any(cells[m]["low"] > 0 for m in ("hr@10", "ndcg@10")):
                    helps.append(label)
                elif any(cells[m]["high"] < 0 for m in ("hr@10", "ndcg@10")):
                    hurts.append(label)
    if helps:
        return [f"Verdict: helps on test for {'; '.join(helps)}."]
    return [
        "Verdict: no variant helps: every test interval on HR@10 and NDCG@10 holds zero or lies below it"
        + (f" (below: {'; '.join(hurts)})" if hurts else "")
        + ". Hidden movies stay a filter (they are never shown), not a score; their use in training (extra "
        "negatives in PinSage's loss) is not worth trying on this evidence.",
        "",
        "Caveat: a low rating is a movie the person chose to watch, so its neighbours are partly what they watch "
        'next; "not interested" on a pick is a movie they did not choose. The simulation can understate the '
        "signal; the site's own hides, once there are enough, are the better test.",
    ]


def write_markdown(report: dict) -> None:
    lines = [
        "# Hidden movies as a negative signal at serving time",
        "",
        "Hidden = movies the user rated at most the threshold in the history the list is made from (train for "
        "validation, train + validation for test). Each variant's setting is chosen on validation (HR@10 + "
        "NDCG@10); differences are on test, paired per user, 95% bootstrap over seeds and users.",
        "",
        *verdict(report),
        "",
    ]
    for found in report["datasets"].values():
        lines += [*found["markdown"], ""]
    (RESULTS / "negative.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
