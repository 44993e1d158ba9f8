"""Does team-draft interleaving (recommender.ml.interleaving) tell two rankers apart, and after how many
impressions? Simulated users on ml-100k's temporal leave-last-out split: each impression is one test user drawn
at random (with replacement, so people come back), shown the interleaving of two rankers' top 10, who clicks
their held-out next movie if shown (position-biased) and other shown movies at a small noise rate. Reports the
power to pick the ranker that is better offline, the wrong-direction rate, the A/A false-positive rate (one look
and daily peeking) and what the admin's "days needed" predicted; writes bench/results/interleaving.*."""

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from movielens_files import DATA_ROOT, load

from recommender.ml import evaluation, interleaving
from recommender.ml.experiment import prepare
from recommender.ml.interleaving import CHALLENGER, LIVE
from recommender.ml.training import TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"
K = evaluation.K
# Each ranker at the parameters bench/quality's validation chose on ml-100k (bench/results/quality.md).
RANKERS = {
    "ease_recency": (evaluation.ease_recency_scorer, {"l2": 500.0, "recency_half_life": 5.0, "min_stars": 0.0}),
    "itemknn_recency": (
        evaluation.item_knn_recency_scorer,
        {"num_neighbors": 200, "shrink": 10.0, "recency_half_life": 2.0, "min_stars": 0.0},
    ),
    "itemknn": (evaluation.item_knn_scorer, {"num_neighbors": 100, "shrink": 10.0}),
    "most_rated": (evaluation.most_rated_scorer, {}),
}
PAIRS = (("ease_recency", "itemknn_recency"), ("ease_recency", "itemknn"), ("ease_recency", "most_rated"))
AA_RANKER = "ease_recency"  # the most hits of all: the strongest per-user clustering, the hardest A/A case
# Every 500 impressions is a daily look at 500 a day; 250 shows the start of the power curve.
LOOKS = (250, *range(500, 10_001, 500))
REPORTED_LOOKS = (250, 500, 1000, 2000, 5000, 10_000)


@dataclass(frozen=True)
class Settings:
    seed: int
    share: float  # of test users in the experiment (interleaving.in_experiment)
    bias_exponent: float  # the held-out movie at 0-based position p is clicked with probability (1 + p)^-exponent
    noise: float  # each shown movie is also clicked at random with this probability
    impressions_per_day: int  # to turn impressions into the admin's days
    num_samples: int  # bootstrap resamples of interleaving.preference

    def click_probability(self) -> np.ndarray:
        return (1.0 + np.arange(K)) ** -self.bias_exponent  # (K,)


@dataclass(frozen=True)
class Lists:
    users: np.ndarray  # (num_users,) split user indices with a test movie
    truth: np.ndarray  # (num_users,) their held-out next movie
    ranked: dict[str, np.ndarray]  # ranker -> (num_users, K) top 10, best first
    params: dict[str, dict]
    offline_hr: dict[str, dict[str, float]]  # ranker -> {"hr@5": .., "hr@10": ..} on test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--experiments", type=int, default=250, help="simulated experiments per ranker pair")
    parser.add_argument("--aa-experiments", type=int, default=800, help="simulated A/A experiments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--share", type=float, default=1.0)
    parser.add_argument("--bias-exponent", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--impressions-per-day", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=2000)
    args = parser.parse_args()
    settings = Settings(
        args.seed, args.share, args.bias_exponent, args.noise, args.impressions_per_day, args.num_samples
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    lists = ranked_lists(Path(args.data_root) / "ml-100k", args.seed)
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "settings": {
            **vars(settings),
            "dataset": "ml-100k",
            "split_seed": args.seed,
            "test_users": len(lists.users),
            "experiments_per_pair": args.experiments,
            "aa_experiments": args.aa_experiments,
            "looks": LOOKS,
            "k": K,
        },
        "rankers": {name: {"params": lists.params[name], **lists.offline_hr[name]} for name in RANKERS},
        "pairs": {},
    }
    for index, (better, worse) in enumerate(PAIRS):
        runs = [experiment(lists, better, worse, index, e, settings) for e in range(args.experiments)]
        report["pairs"][f"{better} vs {worse}"] = summarised(runs, settings)
        print(f"{better} vs {worse}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    runs = [experiment(lists, AA_RANKER, AA_RANKER, len(PAIRS), e, settings) for e in range(args.aa_experiments)]
    report["aa"] = {"ranker": AA_RANKER, **summarised(runs, settings)}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    text = format_report(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "interleaving.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (RESULTS / "interleaving.md").write_text(text + "\n")
    plot(report, RESULTS / "interleaving.png")


def ranked_lists(directory: Path, seed: int) -> Lists:
    """Every test user's top 10 from each ranker, with history = train + validation, as the test split scores."""
    interactions, catalogue = load(directory)
    split = prepare(interactions, catalogue, TrainingConfig(seed=seed)).split
    ranked, offline_hr = {}, {}
    for name, (factory, params) in RANKERS.items():
        users, ranked[name] = evaluation.ranked_lists(split, factory(split, **params), "test", k=K)
        offline_hr[name] = {f"hr@{k}": evaluation.hit_rate_at_k(ranked[name], split.test[users], k) for k in (5, K)}
    return Lists(users, split.test[users], ranked, {n: p for n, (_, p) in RANKERS.items()}, offline_hr)


def experiment(lists: Lists, better: str, worse: str, pair: int, number: int, settings: Settings) -> dict:
    """One simulated experiment of max(LOOKS) impressions, read at every look. The better ranker is the
    challenger in even experiments and live in odd ones, so neither role is favoured by construction."""
    salt = f"bench:{pair}:{number}"
    generator = np.random.default_rng([settings.seed, pair, number])
    better_team = CHALLENGER if number % 2 == 0 else LIVE
    live, challenger = (worse, better) if better_team == CHALLENGER else (better, worse)
    taking_part = np.array([interleaving.in_experiment(int(u), salt, settings.share) for u in lists.users])
    shown = generator.choice(np.flatnonzero(taking_part), size=max(LOOKS))  # row in `lists`, per impression
    pages = {}  # row -> (teams, position of the held-out movie or -1): one page per person, as on reload
    for row in np.unique(shown):
        live_list, challenger_list = lists.ranked[live][row].tolist(), lists.ranked[challenger][row].tolist()
        seed = interleaving.draft_seed(int(lists.users[row]), salt, live_list, challenger_list)
        movies, teams = interleaving.team_draft(live_list, challenger_list, K, seed)
        truth = int(lists.truth[row])
        pages[row] = (teams, movies.index(truth) if truth in movies else -1)
    outcomes = impressions(shown, pages, generator, settings)
    looks = []
    for n in LOOKS:
        counts = per_user_counts(shown[:n], outcomes[:n])
        pref = interleaving.preference(
            counts[LIVE], counts[CHALLENGER], counts[2], num_samples=settings.num_samples, seed=number
        )
        looks.append(read_look(pref, n, better_team, settings))
    return {"looks": looks}


def impressions(shown: np.ndarray, pages: dict, generator: np.random.Generator, settings: Settings) -> np.ndarray:
    """Each impression's outcome (+1 challenger, -1 live, 0 tie or no click) through interleaving.outcome."""
    positions = np.array([pages[row][1] for row in shown])
    examined = generator.random(len(shown)) < settings.click_probability()[np.maximum(positions, 0)]
    wanted = (positions >= 0) & examined  # (impressions,) the held-out movie was shown and clicked
    noise = generator.random((len(shown), K)) < settings.noise  # (impressions, K)
    outcomes = np.zeros(len(shown), dtype=np.int64)
    for i in np.flatnonzero(wanted | noise.any(axis=1)):
        clicked = np.flatnonzero(noise[i]).tolist() + ([int(positions[i])] if wanted[i] else [])
        outcomes[i] = interleaving.outcome(pages[shown[i]][0], clicked)
    return outcomes


def per_user_counts(shown: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(3, num_people): row LIVE = live's wins per person, CHALLENGER = the challenger's, 2 = ties."""
    people, person = np.unique(shown, return_inverse=True)
    counts = np.stack(
        [
            np.bincount(person[outcomes == -1], minlength=len(people)),
            np.bincount(person[outcomes == 1], minlength=len(people)),
            np.bincount(person[outcomes == 0], minlength=len(people)),
        ]
    )
    assert LIVE == 0 and CHALLENGER == 1
    return counts


def read_look(pref: interleaving.Preference, n: int, better_team: int, settings: Settings) -> dict:
    """What the admin would show after n impressions, turned to the better ranker's side."""
    for_better = for_worse = False
    if pref.low is not None and pref.high is not None:
        above, below = pref.low > 0.5, pref.high < 0.5
        for_better, for_worse = (above, below) if better_team == CHALLENGER else (below, above)
    share = None if pref.share is None else (pref.share if better_team == CHALLENGER else 1 - pref.share)
    days = n / settings.impressions_per_day
    predicted = {}
    for power in (0.5, 0.8):
        more = interleaving.days_needed(pref, days, power=power)
        predicted[power] = math.inf if more is None else n + more * settings.impressions_per_day
    decisive = pref.live_wins + pref.challenger_wins
    binomial_excludes = pref.share is not None and abs(pref.share - 0.5) > interleaving.Z_95 * math.sqrt(
        pref.share * (1 - pref.share) / decisive
    )
    return {
        "for_better": for_better,
        "binomial_excludes": binomial_excludes,  # as if every decisive impression were independent
        "for_worse": for_worse,
        "share_for_better": share,
        "decisive": decisive,
        "design_effect": interleaving.design_effect(pref),
        "predicted_50": predicted[0.5],
        "predicted_80": predicted[0.8],
    }


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion."""
    z = interleaving.Z_95
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def crossing(looks: list[int], power: list[float], target: float) -> float | None:
    """Impressions where power first reaches `target`, linear in log impressions between looks; None if never."""
    for i, value in enumerate(power):
        if value >= target:
            if i == 0:
                return float(looks[0])
            span = (target - power[i - 1]) / (value - power[i - 1])
            return float(math.exp(math.log(looks[i - 1]) + span * math.log(looks[i] / looks[i - 1])))
    return None


def summarised(runs: list[dict], settings: Settings) -> dict:
    """Per look over experiments: power, wrong direction, any exclusion (A/A), shares, design effect and the
    admin's predictions; and the share of experiments ever decided over the daily looks (peeking)."""
    num = len(runs)
    per_look = []
    for i, n in enumerate(LOOKS):
        looks = [run["looks"][i] for run in runs]
        better = sum(look["for_better"] for look in looks)
        worse = sum(look["for_worse"] for look in looks)
        undecided = [look for look in looks if not (look["for_better"] or look["for_worse"])]
        shares = [look["share_for_better"] for look in looks if look["share_for_better"] is not None]
        per_look.append(
            {
                "impressions": n,
                "power": better / num,
                "wrong_direction": worse / num,
                "either": (better + worse) / num,
                "either_interval": wilson(better + worse, num),
                "binomial_either": sum(look["binomial_excludes"] for look in looks) / num,
                "mean_share_for_better": float(np.mean(shares)) if shares else None,
                "mean_decisive": float(np.mean([look["decisive"] for look in looks])),
                "median_design_effect": float(np.median([look["design_effect"] for look in looks])),
                "undecided": len(undecided) / num,
                # What the admin shows while it says "not yet": over the experiments still undecided at this look.
                "median_predicted_50": float(np.median([look["predicted_50"] for look in undecided]))
                if undecided
                else None,
                "median_predicted_80": float(np.median([look["predicted_80"] for look in undecided]))
                if undecided
                else None,
            }
        )
    ever = sum(any(look["for_better"] or look["for_worse"] for look in run["looks"]) for run in runs)
    ever_worse = sum(any(look["for_worse"] for look in run["looks"]) for run in runs)
    power = [look["power"] for look in per_look]
    return {
        "experiments": num,
        "per_look": per_look,
        "impressions_for_50_power": crossing(list(LOOKS), power, 0.5),
        "impressions_for_80_power": crossing(list(LOOKS), power, 0.8),
        "ever_excluded_over_daily_looks": ever / num,
        "ever_excluded_interval": wilson(ever, num),
        "ever_wrong_direction_over_daily_looks": ever_worse / num,
    }


def number(value: float | None, missing: str = "> 10,000") -> str:
    if value is None:
        return missing
    return "∞" if math.isinf(value) else f"{value:,.0f}"


def format_report(report: dict) -> str:
    settings = report["settings"]
    lines = [
        "# Team-draft interleaving: power, wrong direction and A/A false positives (simulated users, ml-100k)",
        "",
        f"Commit {report['commit']}, {report['measured_at']}; {report['cpu_seconds']:.0f} CPU seconds on one core "
        f"({report['seconds']:.0f} s wall beside another benchmark on the same two cores). ml-100k's "
        f"temporal leave-last-out split (seed {settings['split_seed']}), its {settings['test_users']} test users; "
        f"each ranker's top {settings['k']} with history = train + validation. An impression is one test user "
        "drawn uniformly with replacement (so people return, and one person's impressions are correlated), who "
        "sees `team_draft` of the two lists (seeded by `draft_seed`, so a returning person sees the same page), "
        "clicks the held-out next movie if shown at 0-based position p with probability "
        f"(1 + p)^-{settings['bias_exponent']} (1.00 at the top, 0.32 at the tenth), and clicks each shown movie at "
        f"random with probability {settings['noise']} (noise). `outcome` credits the clicks; `preference` "
        f"({settings['num_samples']} bootstrap resamples over users) reads the experiment at every 500 impressions "
        f"and at 250. Share in the experiment {settings['share']} (`in_experiment`); the better ranker is the "
        "challenger in even experiments and live in odd ones; generator seeds are "
        f"[{settings['seed']}, pair, experiment], the bootstrap's the experiment number. "
        f"{settings['experiments_per_pair']} experiments per pair and {settings['aa_experiments']} A/A, so a power "
        "near 0.8 is ± 0.05 and an A/A rate near 0.05 ± 0.015 (95%): cut from 300 and 1,000 (781 s wall) to keep the "
        "run near 10 minutes; the bootstrap at 21 looks an experiment is most of the time.",
        "",
        "| ranker | params | offline test HR@5 | HR@10 |",
        "|---|---|---|---|",
    ]
    for name, ranker in report["rankers"].items():
        lines.append(f"| {name} | {json.dumps(ranker['params'])} | {ranker['hr@5']:.4f} | {ranker['hr@10']:.4f} |")
    lines += ["", "## Power (the interval excludes 0.5 in favour of the better ranker) and wrong direction", ""]
    header = "| pair | " + " | ".join(f"{n:,}" for n in REPORTED_LOOKS) + " | 80% power at |"
    lines += [header, "|---" * (len(REPORTED_LOOKS) + 2) + "|"]
    for name, pair in report["pairs"].items():
        at = {look["impressions"]: look for look in pair["per_look"]}
        cells = [f"{at[n]['power']:.2f} / {at[n]['wrong_direction']:.3f}" for n in REPORTED_LOOKS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {number(pair['impressions_for_80_power'])} |")
    lines += [
        "",
        "Each cell: power / wrong-direction rate at that many impressions.",
        "",
        "| pair | mean share for the better at 10k | decisive impressions at 10k | design effect at 10k | "
        "50% power at | wrong direction at any daily look |",
        "|---|---|---|---|---|---|",
    ]
    for name, pair in report["pairs"].items():
        last = pair["per_look"][-1]
        lines.append(
            f"| {name} | {last['mean_share_for_better']:.3f} | {last['mean_decisive']:,.0f} | "
            f"{last['median_design_effect']:.2f} | {number(pair['impressions_for_50_power'])} | "
            f"{pair['ever_wrong_direction_over_daily_looks']:.3f} |"
        )
    aa = report["aa"]
    lines += [
        "",
        f"## A/A: {aa['ranker']} against a copy of itself ({aa['experiments']} experiments)",
        "",
        "| impressions | false positives (either way) | Wilson 95% interval | design effect | "
        "with a binomial interval instead |",
        "|---|---|---|---|---|",
    ]
    for look in aa["per_look"]:
        if look["impressions"] in REPORTED_LOOKS:
            low, high = look["either_interval"]
            lines.append(
                f"| {look['impressions']:,} | {look['either']:.3f} | [{low:.3f}, {high:.3f}] | "
                f"{look['median_design_effect']:.2f} | {look['binomial_either']:.3f} |"
            )
    low, high = aa["ever_excluded_interval"]
    lines += [
        "",
        f"Peeking: an A/A experiment read at all {len(settings['looks'])} looks (every day at "
        f"{settings['impressions_per_day']} impressions a day, to 10,000) and stopped at the first interval that "
        f"excludes 0.5 declares a winner in {aa['ever_excluded_over_daily_looks']:.3f} [{low:.3f}, {high:.3f}] of "
        "experiments, against about 0.05 at one planned look. Staff watching the admin daily must fix the "
        "length in advance (the admin's days needed at the start, at 80% power) and decide only then, or treat an "
        "early exclusion as a lead, not a result.",
        "",
        "## The admin's days needed against the simulation",
        "",
        f"Days needed turned into impressions (at {settings['impressions_per_day']} a day: impressions so far + "
        "days needed x rate), median over the experiments still undecided at that look (what the admin shows "
        "while it says not yet; ∞ where nothing decisive was seen), with power 0.5 (the default: when the interval "
        "would exclude 0.5 if the share stays as observed) and 0.8, beside the impressions at which the simulation "
        "reached 50% and 80% power.",
        "",
        "| pair | read at | undecided | predicted, power 0.5 | simulated 50% | predicted, power 0.8 | simulated 80% |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pair in report["pairs"].items():
        for look in pair["per_look"]:
            if look["impressions"] in (250, 500, 1000, 2000):
                lines.append(
                    f"| {name} | {look['impressions']:,} | {look['undecided']:.2f} | "
                    f"{number(look['median_predicted_50'], '-')} | {number(pair['impressions_for_50_power'])} | "
                    f"{number(look['median_predicted_80'], '-')} | {number(pair['impressions_for_80_power'])} |"
                )
    return "\n".join(lines + reading(report))


def reading(report: dict) -> list[str]:
    """What the tables say, in numbers taken from them."""
    rankers, aa = report["rankers"], report["aa"]
    lines = ["", "## Reading", ""]
    for name, pair in report["pairs"].items():
        better, worse = name.split(" vs ")
        last = pair["per_look"][-1]
        found = pair["impressions_for_80_power"]
        lines.append(
            f"- {name} (offline HR@10 {rankers[better]['hr@10']:.3f} vs {rankers[worse]['hr@10']:.3f}, HR@5 "
            f"{rankers[better]['hr@5']:.3f} vs {rankers[worse]['hr@5']:.3f}): "
            + (f"80% power at about {found:,.0f} impressions" if found else "no 80% power within 10,000 impressions")
            + f"; the better ranker's share {last['mean_share_for_better']:.3f} at 10k; wrong direction at most "
            f"{max(look['wrong_direction'] for look in pair['per_look']):.3f} at any one look."
        )
    ratios = [
        look[f"median_predicted_{p}"] / pair[f"impressions_for_{p}_power"]
        for pair in report["pairs"].values()
        for look in pair["per_look"]
        for p in (50, 80)
        if look["impressions"] in (250, 500) and pair["impressions_for_50_power"] and pair["impressions_for_80_power"]
        if look[f"median_predicted_{p}"] is not None and math.isfinite(look[f"median_predicted_{p}"])
    ]
    first, last = aa["per_look"][0], aa["per_look"][-1]
    rates = [look["either"] for look in aa["per_look"]]
    factor = max(max(ratios), 1 / min(ratios)) if ratios else math.nan
    lines += [
        "- A page of 10 holds about 5 picks from each list, so interleaving compares the rankers' heads, not their "
        "HR@10: two rankers that are even at HR@5 come out near 0.5 however far apart their HR@10 is, and that is "
        "the right answer for the top 10 the page shows.",
        f"- A/A at one planned look: {min(rates):.3f} to {max(rates):.3f} false positives over the looks (nominal "
        f"0.05); a binomial interval, blind to people returning, would give {last['binomial_either']:.3f} at "
        f"{last['impressions']:,}. "
        f"Peeking daily and stopping at the first exclusion: {aa['ever_excluded_over_daily_looks']:.3f}.",
        "- A returning person here re-clicks the same next movie at every visit (in production a clicked or rated "
        "movie leaves their list), and ml-100k has only 943 people, so one person's impressions pile up: the A/A "
        f"design effect grows from {first['median_design_effect']:.2f} at {first['impressions']:,} impressions to "
        f"{last['median_design_effect']:.2f} at {last['impressions']:,}. More impressions from the same people add "
        "less and less; a close pair needs more people, not more days. The bootstrap over users carries this, which "
        "is why the single-look A/A rate stays near 0.05.",
        "- Days needed: read at 250 to 500 impressions, the admin's median prediction over undecided experiments "
        + (
            f"was {min(ratios):.2f}x to {max(ratios):.2f}x the impressions the simulation needed for 50% (power 0.5) "
            f"and 80% (power 0.8) power on the pairs with an effect: right to within a factor of {factor:.1f}. "
            if ratios
            else "had no pair with an effect to compare against. "
        )
        + "It assumes the design effect stays as observed, which the growth above breaks when the same people keep "
        "returning. With an effect below min_effect it predicts the impressions for share 0.55, not for the true one; "
        "once that many have come in it returns 0 while the interval still holds 0.5, which the admin should show as "
        '"no effect of 0.05 or more".',
    ]
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, pair in report["pairs"].items():
        looks = pair["per_look"]
        axis.plot([look["impressions"] for look in looks], [look["power"] for look in looks], marker=".", label=name)
    aa = report["aa"]["per_look"]
    axis.plot(
        [look["impressions"] for look in aa],
        [look["either"] for look in aa],
        color="black",
        linestyle="--",
        label=f"A/A false positives ({report['aa']['ranker']} vs itself)",
    )
    axis.axhline(0.8, color="grey", linewidth=0.8, linestyle=":")
    axis.axhline(0.05, color="grey", linewidth=0.8, linestyle=":")
    axis.set(
        xscale="log",
        xlabel="impressions",
        ylabel="share of experiments whose 95% interval excludes 0.5",
        title="Team-draft interleaving on ml-100k, simulated users",
        ylim=(0, 1.02),
    )
    axis.legend(fontsize=8, loc="center right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
