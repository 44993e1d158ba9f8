"""Do "Because you liked ..." credits span a person's taste? Simulated people who rate 8 popular movies of 8
different genres at 5 stars get their top 20 exactly as pages serve it (scoring.select_history, rank, then
scoring.credited over each pick's own 20 nearest movies, from the published vectors); we count how many of
the 8 are credited, beside other credit rules and other ways of filling the list, whose cost is HR@10 and HR@20
on the leave-last-out test. Writes bench/results/explanations.{json,md}."""

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from movielens_files import DATA_ROOT, commit_of, load

from recommender.ml import evaluation
from recommender.ml.data import Catalogue, Histories
from recommender.ml.experiment import fit_pinsage, prepare
from recommender.ml.scoring import (
    CREDIT_NEIGHBOURS,
    Evidence,
    Ranked,
    ScoringConfig,
    _top_per_user,
    credited,
    rank,
    select_history,
    top_neighbors,
)
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"
POOL = 300  # profiles draw from the most-rated movies, the ones a person is likely to know
NUM_LIKED = 8
SHOWN = 20  # what the recommendations page asks for
WIDE = 50  # a wider "own list" for the credit rule
NOT_GENRES = {"unknown", "(no genres listed)", "IMAX"}  # labels, not genres a taste spans
GAP_S = (5, 600)  # seconds between two ratings of one profile, as a person rating on the site
# The review's case: varied classics, a foreign film and a musical (the first title of each row found is used).
CLASSICS = (
    ("Star Wars (1977)", "Star Wars: Episode IV - A New Hope (1977)"),
    ("Fargo (1996)",),
    ("Toy Story (1995)",),
    ("Godfather, The (1972)",),
    ("Casablanca (1942)",),
    ("Silence of the Lambs, The (1991)",),
    ("Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Cinema Paradiso (1988)"),
    ("Sound of Music, The (1965)",),
)

# Ways to order the served list: (groups counted: "sources" = rank's largest contributor, "credits" = the served
# credit; share of the list one group may hold, None for a round robin over the groups; a head of that many picks
# kept as served at that size, the round robin filling the rest; 1: only its first round, then the served order).
SERVED = "served (source cap 0.5)"
HEADED = "top 10 as served, then credit round robin"
FIRST_ROUND = "top 10 as served, then the best pick of each like not yet credited, then by score"
PAGE = 20  # a share is of the page's 20 picks, whatever k a list is cut at, as the served cap is
SERVED_SHARE = 0.5  # ScoringConfig.max_per_source (10) of the page, which tuning leaves as it is (checked below)
ORDERINGS: dict[str, tuple[str, float | None, int, int]] = {
    SERVED: ("sources", SERVED_SHARE, 0, 0),
    "source cap 0.25": ("sources", 0.25, 0, 0),
    "source cap 0.1": ("sources", 0.1, 0, 0),
    "credit cap 0.25": ("credits", 0.25, 0, 0),
    "credit cap 0.1": ("credits", 0.1, 0, 0),
    "credit round robin": ("credits", None, 0, 0),
    HEADED: ("credits", None, 10, 0),
    FIRST_ROUND: ("credits", None, 10, 1),
}


def primary_genres(catalogue: Catalogue, pool: np.ndarray) -> dict[int, str]:
    """A movie's primary genre: its genre fewest movies of the pool share (ties: by name), so Toy Story is
    Animation rather than Comedy and Star Wars Sci-Fi or War rather than Action. Listed order carries no weight
    (ml-100k lists genres alphabetically)."""
    counts = Counter(g for m in pool for g in catalogue.genres[m] if g not in NOT_GENRES)
    found = {}
    for movie in pool:
        genres = [g for g in catalogue.genres[movie] if g not in NOT_GENRES]
        if genres:
            found[int(movie)] = min(genres, key=lambda g: (counts[g], g))
    return found


def profiles(primary: dict[int, str], num: int, start: int, rng: np.random.Generator) -> Histories:
    """`num` people, each 8 movies of 8 primary genres (drawn in a random order of the pool, so a genre comes up
    as often as the pool holds it), rated 5 stars a few seconds to minutes apart, in the order drawn."""
    movies, times = [], []
    pool = np.array(sorted(primary))
    for _ in range(num):
        chosen: dict[str, int] = {}
        for movie in rng.permutation(pool):
            chosen.setdefault(primary[int(movie)], int(movie))
            if len(chosen) == NUM_LIKED:
                break
        movies.append(list(chosen.values()))
        times.append(start + np.cumsum(rng.integers(*GAP_S, size=NUM_LIKED)))
    users = np.repeat(np.arange(num), NUM_LIKED)
    stars = np.full(num * NUM_LIKED, 5.0, dtype=np.float32)
    return Histories.of(users, np.concatenate(movies), stars, np.concatenate(times), num)


def liked_of(evidence: Evidence, num_users: int) -> list[list[int]]:
    """Each user's liked evidence, newest first: what _personal passes to the credit rule."""
    liked: list[list[int]] = [[] for _ in range(num_users)]
    for user, movie, is_liked in zip(evidence.users, evidence.movies, evidence.liked):
        if is_liked:
            liked[user].append(int(movie))
    return liked


def candidates(
    histories: Histories, neighbors: tuple[np.ndarray, np.ndarray], scoring: ScoringConfig
) -> tuple[Evidence, Ranked]:
    """The serving rule's evidence and every candidate of each user by score, before any cap. Every one: where one
    liked movie brings most of a user's best candidates, the cap moves picks up from far down the list."""
    evidence = select_history(histories, scoring)
    ids, sims = neighbors
    uncapped = replace(scoring, max_per_source=0)
    depth = scoring.neighbors_per_item * int(np.bincount(evidence.users, minlength=1).max())
    return evidence, rank(evidence, ids[evidence.movies], sims[evidence.movies], histories, uncapped, depth)


# A credit rule: (picks, rank's sources, liked movies, user) -> the liked movie credited per pick, -1 for none.
CreditRule = Callable[[list[int], list[int], list[int], int], list[int]]


def credit_rules(
    own: np.ndarray, vectors: np.ndarray, evidence: Evidence, scoring: ScoringConfig
) -> dict[str, CreditRule]:
    def first_in_own(n: int) -> CreditRule:
        def rule(picks: list[int], sources: list[int], liked: list[int], user: int) -> list[int]:
            lists = {p: own[p, :n].tolist() for p in picks}
            return [s for _, _, s in credited([(0.0, p, s) for p, s in zip(picks, sources)], liked, lists)]

        return rule

    weights: dict[tuple[int, int], float] = {
        (int(u), int(m)): float(w) for u, m, w in zip(evidence.users, evidence.movies, evidence.weights)
    }
    n = scoring.neighbors_per_item

    def contribution(user: int, liked: int, pick: int) -> float:
        """What `liked` added to the pick's score in rank: nothing unless the pick is in its first n neighbours."""
        if pick not in own[liked, :n]:
            return 0.0
        similarity = float(vectors[liked] @ vectors[pick])
        if scoring.sharpness > 0:
            similarity = float(np.exp((similarity - 1.0) / scoring.sharpness))
        return weights[(user, liked)] * similarity

    def largest_if_neighbour(picks: list[int], sources: list[int], liked: list[int], user: int) -> list[int]:
        return [s if s >= 0 and s in own[p, :CREDIT_NEIGHBOURS] else -1 for p, s in zip(picks, sources)]

    def largest_among_neighbours(picks: list[int], sources: list[int], liked: list[int], user: int) -> list[int]:
        found, liked_set = [], set(liked)
        for pick in picks:
            near = [m for m in own[pick, :CREDIT_NEIGHBOURS].tolist() if m in liked_set]
            found.append(max(near, key=lambda m: contribution(user, m, pick)) if near else -1)
        return found

    return {
        "served: first liked in the pick's own 20": first_in_own(CREDIT_NEIGHBOURS),
        f"first liked in the pick's own {WIDE}": first_in_own(WIDE),
        "largest contributor (rank's sources)": lambda picks, sources, liked, user: list(sources),
        "largest contributor if in the pick's own 20": largest_if_neighbour,
        "largest contributor among liked in the pick's own 20": largest_among_neighbours,
    }


TEST_METRICS = ("hr@10", "ndcg@10", "hr@20")
SERVED_CREDIT = "served: first liked in the pick's own 20"


def _cumcount(keys: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal (sorted) keys."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))


def capped(movies: np.ndarray, groups: np.ndarray, k: int, share: float) -> np.ndarray:
    """Column positions (num_users, k) of `movies` (each row best first) through the serving rule's own cap
    (scoring._top_per_user) on `groups` (-1: never capped)."""
    users, position = np.nonzero(movies >= 0)
    # Score = -position, so the cap reorders the list as given, never by a float32 rounding of its scores.
    flat_groups = groups[users, position]
    cap = max(1, int(share * PAGE))
    return _top_per_user(users, position, -position.astype(np.float64), flat_groups, len(movies), k, cap).movies


def round_robin(movies: np.ndarray, groups: np.ndarray, k: int, head: np.ndarray) -> np.ndarray:
    """Column positions (num_users, k): each row's `head` positions, then each group's best remaining candidate
    in turn (a group already in the head waits its turn), in score order within a round, the uncredited (-1)
    counted as one group."""
    out = np.full((len(movies), k), -1, dtype=np.int64)
    for user in range(len(movies)):
        taken = [int(p) for p in head[user] if p >= 0][:k]
        turns = Counter(groups[user, taken].tolist())
        rest = []
        for position in np.flatnonzero(movies[user] >= 0):
            if position not in taken:
                group = int(groups[user, position])
                rest.append((turns[group], int(position)))
                turns[group] += 1
        chosen = taken + [p for _, p in sorted(rest)[: k - len(taken)]]
        out[user, : len(chosen)] = chosen
    return out


def first_round(movies: np.ndarray, groups: np.ndarray, k: int, head: np.ndarray, served: np.ndarray) -> np.ndarray:
    """Column positions (num_users, k): each row's `head` positions; then, in score order, the best candidate
    of each group (liked movie credited) that the head leaves out; then the `served` list's order, then score
    order, for the places left."""
    out = np.full((len(movies), k), -1, dtype=np.int64)
    for user in range(len(movies)):
        chosen = [int(p) for p in head[user] if p >= 0][:k]
        shown = set(groups[user, chosen].tolist())
        for position in np.flatnonzero(movies[user] >= 0):
            group = int(groups[user, position])
            if group >= 0 and group not in shown:
                chosen.append(int(position))
                shown.add(group)
        taken = set(chosen)
        chosen += [int(p) for p in (*served[user], *np.flatnonzero(movies[user] >= 0)) if p >= 0 and p not in taken]
        chosen = list(dict.fromkeys(chosen))[:k]
        out[user, : len(chosen)] = chosen
    return out


def ordered(
    movies: np.ndarray, sources: np.ndarray, credits: np.ndarray, k: int, spec: tuple[str, float | None, int, int]
) -> np.ndarray:
    """Column positions (num_users, k) of `movies` as the ordering `spec` serves them at k."""
    groups_name, share, head, rounds = spec
    groups = sources if groups_name == "sources" else credits
    if share is not None:
        return capped(movies, groups, k, share)
    if head >= k:
        return capped(movies, sources, k, SERVED_SHARE)
    first = capped(movies, sources, head, SERVED_SHARE) if head else np.zeros((len(movies), 0), int)
    if rounds:
        return first_round(movies, groups, k, first, capped(movies, sources, k, SERVED_SHARE))
    return round_robin(movies, groups, k, first)


def credit_matrix(rule: CreditRule, movies: np.ndarray, sources: np.ndarray, liked: list[list[int]]) -> np.ndarray:
    out = np.full(movies.shape, -1, dtype=np.int64)
    for user in range(len(movies)):
        row = movies[user]
        picks = row[row >= 0].tolist()
        out[user, : len(picks)] = rule(picks, sources[user, : len(picks)].tolist(), liked[user], user)
    return out


def served_lists(
    full: Ranked, liked: list[list[int]], rule: CreditRule, k: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each ordering's top k (num_users, k) and rank's sources for it (largest contributor)."""
    credits = credit_matrix(rule, full.movies, full.sources, liked)
    found = {}
    for name, spec in ORDERINGS.items():
        positions = ordered(full.movies, full.sources, credits, k, spec)
        rows = np.arange(len(positions))[:, None]
        picks = np.where(positions >= 0, full.movies[rows, positions], -1)
        found[name] = (picks, np.where(positions >= 0, full.sources[rows, positions], -1))
    return found


def credit_figures(credits: np.ndarray, picks: np.ndarray) -> dict[str, float]:
    distinct = np.array([len(set(row[row >= 0].tolist())) for row in credits])
    return {
        "mean_credited": float(distinct.mean()),
        "share_at_least_5": float((distinct >= 5).mean()),
        "share_uncredited_picks": float(((credits < 0) & (picks >= 0)).sum() / max(1, (picks >= 0).sum())),
    }


def profile_figures(
    histories: Histories,
    neighbors: tuple[np.ndarray, np.ndarray],
    vectors: np.ndarray,
    scoring: ScoringConfig,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(each credit rule on the served top 20, each ordering's served credits, each ordering's lists)."""
    evidence, full = candidates(histories, neighbors, scoring)
    liked = liked_of(evidence, histories.num_users)
    rules = credit_rules(neighbors[0], vectors, evidence, scoring)
    served = rank(evidence, neighbors[0][evidence.movies], neighbors[1][evidence.movies], histories, scoring, SHOWN)
    lists = served_lists(full, liked, rules[SERVED_CREDIT], SHOWN)
    if not np.array_equal(lists[SERVED][0], served.movies):
        raise AssertionError("the refilled served list is not the one rank serves")
    by_rule = {
        name: credit_figures(credit_matrix(rule, served.movies, served.sources, liked), served.movies)
        for name, rule in rules.items()
    }
    by_ordering = {
        name: credit_figures(credit_matrix(rules[SERVED_CREDIT], picks, sources, liked), picks)
        for name, (picks, sources) in lists.items()
    }
    return by_rule, by_ordering, lists


def test_gains(
    split: evaluation.Split, vectors: np.ndarray, scoring: ScoringConfig
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each ordering's per-user (hit@10, NDCG@10, hit@20) on the leave-last-out test, each from the list served
    at that size (the page asks for 20), credits from the vectors evaluated (the train graph's)."""
    neighbors = top_neighbors(vectors, max(scoring.neighbors_per_item, WIDE))
    users = np.flatnonzero(split.test >= 0)
    histories = evaluation.subset_histories(evaluation.split_histories(split, True, True), users)
    evidence, full = candidates(histories, neighbors, scoring)
    liked = liked_of(evidence, len(users))
    rule = credit_rules(neighbors[0], vectors, evidence, scoring)[SERVED_CREDIT]
    truth = split.test[users]
    found: dict[str, tuple[np.ndarray, ...]] = {}
    for k in (evaluation.K, SHOWN):
        lists = served_lists(full, liked, rule, k)
        ids, sims = neighbors[0][evidence.movies], neighbors[1][evidence.movies]
        if not np.array_equal(lists[SERVED][0], rank(evidence, ids, sims, histories, scoring, k).movies):
            raise AssertionError(f"the refilled served test list at {k} is not the one rank serves")
        for name, (picks, _) in lists.items():
            gains = evaluation.per_user_gains(picks, truth, k)
            found[name] = (*found.get(name, ()), *(gains if k == evaluation.K else gains[:1]))
    return found


def classics_case(
    catalogue: Catalogue, neighbors: tuple[np.ndarray, np.ndarray], vectors: np.ndarray, scoring: ScoringConfig
) -> dict:
    """The review's case: the classics rated 5 stars a minute apart, in the order listed."""
    index = {title: i for i, title in enumerate(catalogue.titles)}
    movies = [next(index[t] for t in titles if t in index) for titles in CLASSICS if any(t in index for t in titles)]
    times = 2_000_000_000 + 60 * np.arange(len(movies))
    histories = Histories.of(
        np.zeros(len(movies), dtype=np.int64), np.array(movies), np.full(len(movies), 5.0), times, 1
    )
    by_rule, by_ordering, lists = profile_figures(histories, neighbors, vectors, scoring)
    evidence = select_history(histories, scoring)
    liked = liked_of(evidence, 1)
    rules = credit_rules(neighbors[0], vectors, evidence, scoring)

    def title(movie: int) -> str:
        return catalogue.titles[movie] if movie >= 0 else "-"

    rows = {}
    for ordering in (SERVED, FIRST_ROUND):
        picks, sources = lists[ordering]
        served = credit_matrix(rules[SERVED_CREDIT], picks, sources, liked)[0]
        rows[ordering] = [
            {"pick": title(p), "credit": title(c), "largest_contributor": title(s)}
            for p, c, s in zip(picks[0], served, sources[0])
            if p >= 0
        ]
    return {
        "liked": [title(m) for m in movies],
        "credited_by_rule": {name: round(f["mean_credited"]) for name, f in by_rule.items()},
        "credited_by_ordering": {name: round(f["mean_credited"]) for name, f in by_ordering.items()},
        "picks": rows,
    }


def run_seed(dataset: str, seed: int, num_profiles: int, overrides: dict) -> dict:
    started = time.perf_counter()
    interactions, catalogue = load(DATA_ROOT / dataset)
    config = TrainingConfig.from_dict({**TrainingConfig().as_dict(), **overrides, "seed": seed})
    prepared = prepare(interactions, catalogue, config)
    outcome = fit_pinsage(prepared, config)
    scoring, published = outcome.scoring, outcome.embeddings
    if scoring.max_per_source != int(SERVED_SHARE * PAGE):
        raise AssertionError(f"the tuned rule caps at {scoring.max_per_source}, the bench at {SERVED_SHARE * PAGE}")
    # Published lists: the evidence reads the first neighbors_per_item, a pick's credit its own first 20 (or 50).
    neighbors = top_neighbors(published, max(scoring.neighbors_per_item, WIDE))
    counts = np.bincount(np.searchsorted(catalogue.movie_ids, interactions.movie_ids), minlength=len(catalogue.titles))
    pool = np.argsort(-counts, kind="stable")[:POOL]
    primary = primary_genres(catalogue, pool)
    people = profiles(primary, num_profiles, int(interactions.timestamps.max()) + 86_400, np.random.default_rng(seed))
    by_rule, by_ordering, _ = profile_figures(people, neighbors, published, scoring)
    gains = test_gains(prepared.split, outcome.validation_embeddings, scoring)
    row = {
        "dataset": dataset,
        "seed": seed,
        "scoring": scoring.__dict__,
        "test": outcome.test,
        "primary_genres": dict(Counter(primary.values())),
        "credit_rules": by_rule,
        "orderings": by_ordering,
        "ordering_test": {
            name: {metric: g[i].mean() for i, metric in enumerate(TEST_METRICS)} for name, g in gains.items()
        },
        "classics": classics_case(catalogue, neighbors, published, scoring),
        "seconds": round(time.perf_counter() - started),
    }
    row["_gains"] = gains
    return row


def mean_of(rows: list[dict], *path: str) -> float:
    values = []
    for row in rows:
        for key in path:
            row = row[key]
        values.append(row)
    return float(np.mean(values))


def summary(dataset: str, rows: list[dict]) -> tuple[dict, list[str]]:
    """The dataset's report (means over seeds, orderings' paired test differences) and its markdown lines."""
    differences = {
        name: {
            metric: evaluation.seed_and_user_bootstrap([r["_gains"][name][i] - r["_gains"][SERVED][i] for r in rows])
            for i, metric in enumerate(TEST_METRICS)
        }
        for name in ORDERINGS
        if name != SERVED
    }
    lines = [
        f"## {dataset}: {len(rows)} seeds, {rows[0]['num_profiles']} profiles each (commit {commit_of()})",
        "",
        f"Profiles: {NUM_LIKED} movies of the {POOL} most rated, of {NUM_LIKED} different primary genres (a movie's "
        "genre fewest of those movies share), 5 stars each, 5 s to 10 min apart in the order drawn; the top "
        f"{SHOWN} from the published vectors with the tuned rule, exactly as _personal serves it.",
        "",
        "Credit rules on the served top 20:",
        "",
        "| credit rule | distinct likes credited (of 8) | profiles with >= 5 | picks uncredited |",
        "|---|---|---|---|",
    ]
    for name in rows[0]["credit_rules"]:
        cells = [mean_of(rows, "credit_rules", name, key) for key in rows[0]["credit_rules"][name]]
        lines.append(f"| {name} | {cells[0]:.2f} | {cells[1]:.1%} | {cells[2]:.1%} |")
    lines += [
        "",
        "Orderings of the list, credited by the served rule; on the leave-last-out test (vectors of the train graph, "
        "each metric from the list served at its size), difference from served, bootstrap over seeds and users "
        "(95%):",
        "",
        "| ordering | distinct credited | >= 5 | uncredited | HR@10 | HR@20 | HR@10 vs served | NDCG@10 vs served "
        "| HR@20 vs served |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ORDERINGS:
        cells = [mean_of(rows, "orderings", name, key) for key in rows[0]["orderings"][name]]
        test = [mean_of(rows, "ordering_test", name, m) for m in ("hr@10", "hr@20")]
        compared = [
            f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]" for c in differences.get(name, {}).values()
        ] or ["", "", ""]
        lines.append(
            f"| {name} | {cells[0]:.2f} | {cells[1]:.1%} | {cells[2]:.1%} | {test[0]:.4f} | {test[1]:.4f} | "
            + " | ".join(compared)
            + " |"
        )
    classics = rows[0]["classics"]
    counts = {**classics["credited_by_rule"], **classics["credited_by_ordering"]}
    lines += [
        "",
        f"The classics, rated a minute apart in this order: {'; '.join(classics['liked'])}. Distinct credited per "
        "seed, by credit rule (served list) and by ordering (served credit):",
        "",
    ]
    lines += [
        f"- {name}: "
        + ", ".join(
            str({**r["classics"]["credited_by_rule"], **r["classics"]["credited_by_ordering"]}[name]) for r in rows
        )
        for name in counts
    ]
    for ordering, picks in classics["picks"].items():
        lines += [
            "",
            f"Seed {rows[0]['seed']}, {ordering}:",
            "",
            "| # | pick | credit (served rule) | largest contributor |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {i + 1} | {p['pick']} | {p['credit']} | {p['largest_contributor']} |" for i, p in enumerate(picks)
        ]
    return {"seeds": [{k: v for k, v in r.items() if k != "_gains"} for r in rows], "vs_served": differences}, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--profiles", type=int, default=300)
    parser.add_argument("--config", default="{}", help="JSON overrides of TrainingConfig (a quick check: epochs=1)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json, no runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "explanations.json").read_text()))
        return
    settings = {
        "pool": POOL,
        "liked": NUM_LIKED,
        "shown": SHOWN,
        "credit_neighbours": CREDIT_NEIGHBOURS,
        "wide": WIDE,
        "depth": "every candidate",
        "gap_s": GAP_S,
        "profiles": args.profiles,
        "seeds": args.seeds,
        "config_overrides": json.loads(args.config),
    }
    path = RESULTS / "explanations.json"
    # A dataset run on its own (ml-latest-small takes longer) keeps the others' results beside it.
    report: dict = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    for dataset in args.datasets:
        rows = []
        for seed in range(args.seeds):
            row = run_seed(dataset, seed, args.profiles, json.loads(args.config))
            row["num_profiles"] = args.profiles
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("_gains", "classics")}, default=float))
        found, lines = summary(dataset, rows)
        report["datasets"][dataset] = {
            "commit": commit_of(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "settings": settings,
            **found,
            "markdown": lines,
        }
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    write_markdown(report)


def verdict(dataset: str, found: dict) -> str:
    """The served rule's reach, and the ordering that credits >= 5 of 8 for 95% of profiles at least cost."""
    seeds = found["seeds"]

    def share(name: str) -> float:
        return float(np.mean([s["orderings"][name]["share_at_least_5"] for s in seeds]))

    def cost(name: str) -> tuple[float, float]:
        cells = found["vs_served"].get(name)
        return (-cells["hr@10"]["difference"], -cells["hr@20"]["difference"]) if cells else (0.0, 0.0)

    reaching = [name for name in ORDERINGS if share(name) >= 0.95]
    text = f"{dataset}: as served, {share(SERVED):.0%} of profiles get >= 5 of 8 credited."
    if not reaching:
        return text + " No ordering measured reaches 95%."
    best = min(reaching, key=cost)
    hr10, hr20 = (found["vs_served"][best][m] for m in ("hr@10", "hr@20"))
    return (
        text + f" Cheapest to reach 95%: {best} ({share(best):.1%}), HR@10 {hr10['difference']:+.4f} "
        f"[{hr10['low']:+.4f}, {hr10['high']:+.4f}], HR@20 {hr20['difference']:+.4f} [{hr20['low']:+.4f}, "
        f"{hr20['high']:+.4f}]."
    )


def write_markdown(report: dict) -> None:
    lines = ["# Explanations: how many of 8 varied likes the top 20 credits", ""]
    lines += [f"- {verdict(dataset, found)}" for dataset, found in report["datasets"].items()]
    lines.append("")
    for found in report["datasets"].values():
        lines += [*found["markdown"], ""]
    (RESULTS / "explanations.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
