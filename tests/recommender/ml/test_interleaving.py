"""recommender/ml/interleaving.py: the draft's rules, stable assignment, credit, and the preference interval."""

import time

import numpy as np
import pytest

from recommender.ml import interleaving
from recommender.ml.interleaving import CHALLENGER, LIVE, Preference

LIVE_LIST = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
CHALLENGER_LIST = [3, 11, 1, 12, 13, 2, 14, 15, 16, 17]  # shares 1, 2 and 3 with live, in another order


def test_each_team_keeps_its_lists_order_and_nothing_repeats() -> None:
    for seed in range(200):
        movies, teams = interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 10, seed)
        assert len(movies) == len(teams) == 10
        assert len(set(movies)) == 10
        for team, ranked in ((LIVE, LIVE_LIST), (CHALLENGER, CHALLENGER_LIST)):
            picks = [ranked.index(m) for m, t in zip(movies, teams) if t == team]
            assert picks == sorted(picks)


def test_a_team_picks_its_best_movie_not_yet_shown() -> None:
    for seed in range(200):
        movies, teams = interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 10, seed)
        for position, (movie, team) in enumerate(zip(movies, teams)):
            ranked = LIVE_LIST if team == LIVE else CHALLENGER_LIST
            best_left = next(m for m in ranked if m not in movies[:position])
            assert movie == best_left


def test_each_round_both_teams_pick_once() -> None:
    for seed in range(200):
        _, teams = interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 10, seed)
        assert all(sorted(teams[i : i + 2]) == [LIVE, CHALLENGER] for i in range(0, 10, 2))


def test_the_coin_is_fair_over_seeds() -> None:
    firsts = [interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 10, seed)[1][0] for seed in range(4000)]
    assert np.mean(firsts) == pytest.approx(0.5, abs=0.03)  # 4 standard errors
    odd_pages = [interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 9, seed)[1] for seed in range(4000)]
    assert np.mean([sum(teams) for teams in odd_pages]) == pytest.approx(4.5, abs=0.03)


def test_the_other_list_fills_when_one_runs_out() -> None:
    movies, teams = interleaving.team_draft([1, 2], [3, 4, 5, 6, 7], 6, seed=0)
    assert sorted(movies) == [1, 2, 3, 4, 5, 6]
    assert teams[-2:] == [CHALLENGER, CHALLENGER]
    assert [m for m, t in zip(movies, teams) if t == CHALLENGER] == [3, 4, 5, 6]


def test_the_page_is_shorter_when_both_lists_are_spent() -> None:
    movies, _ = interleaving.team_draft([1, 2], [2, 3], 10, seed=0)
    assert sorted(movies) == [1, 2, 3]
    assert interleaving.team_draft([1, 2], [3], 0, seed=0) == ([], [])


def test_identical_lists_keep_their_ranking() -> None:
    for seed in range(50):
        movies, teams = interleaving.team_draft(LIVE_LIST, LIVE_LIST, 10, seed)
        assert movies == LIVE_LIST
        assert sum(teams) == 5


def test_the_same_seed_gives_the_same_page() -> None:
    seed = interleaving.draft_seed(7, "exp-1", LIVE_LIST, CHALLENGER_LIST)
    assert seed == interleaving.draft_seed(7, "exp-1", LIVE_LIST, CHALLENGER_LIST)
    assert 0 <= seed < 2**63
    assert interleaving.team_draft(LIVE_LIST, CHALLENGER_LIST, 10, seed) == interleaving.team_draft(
        LIVE_LIST, CHALLENGER_LIST, 10, seed
    )


def test_the_draft_seed_changes_with_user_salt_and_lists() -> None:
    seeds = {
        interleaving.draft_seed(7, "exp-1", LIVE_LIST, CHALLENGER_LIST),
        interleaving.draft_seed(8, "exp-1", LIVE_LIST, CHALLENGER_LIST),
        interleaving.draft_seed(7, "exp-2", LIVE_LIST, CHALLENGER_LIST),
        interleaving.draft_seed(7, "exp-1", CHALLENGER_LIST, LIVE_LIST),
        interleaving.draft_seed(7, "exp-1", [1, 23], [4]),
        interleaving.draft_seed(7, "exp-1", [1], [23, 4]),
    }
    assert len(seeds) == 6


def test_assignment_is_stable_and_takes_about_the_share() -> None:
    chosen = [interleaving.in_experiment(user, "exp-1", 0.3) for user in range(10_000)]
    assert chosen == [interleaving.in_experiment(user, "exp-1", 0.3) for user in range(10_000)]
    assert np.mean(chosen) == pytest.approx(0.3, abs=0.02)  # 4 standard errors
    assert not any(interleaving.in_experiment(user, "exp-1", 0.0) for user in range(1000))
    assert all(interleaving.in_experiment(user, "exp-1", 1.0) for user in range(1000))


def test_a_new_salt_draws_a_new_group() -> None:
    first = np.array([interleaving.in_experiment(user, "exp-1", 0.5) for user in range(10_000)])
    second = np.array([interleaving.in_experiment(user, "exp-2", 0.5) for user in range(10_000)])
    assert np.mean(first & second) == pytest.approx(0.25, abs=0.02)


def test_outcome_credits_the_team_with_more_clicked_picks() -> None:
    teams = [LIVE, CHALLENGER, CHALLENGER, LIVE]
    assert interleaving.outcome(teams, [1]) == 1
    assert interleaving.outcome(teams, [0, 3, 2]) == -1
    assert interleaving.outcome(teams, [0, 1]) == 0
    assert interleaving.outcome(teams, []) == 0


def test_outcome_credits_a_position_once() -> None:
    assert interleaving.outcome([LIVE, CHALLENGER], [0, 0, 0, 1]) == 0


def test_outcome_rejects_a_position_off_the_page() -> None:
    with pytest.raises(ValueError):
        interleaving.outcome([LIVE, CHALLENGER], [2])


def test_preference_sums_over_users() -> None:
    pref = interleaving.preference([1, 0, 2, 0], [3, 1, 0, 0], ties=[0, 4, 1, 2])
    assert (pref.live_wins, pref.challenger_wins, pref.ties, pref.users) == (3, 4, 7, 4)
    assert pref.share == pytest.approx(4 / 7)
    assert pref.low is not None and pref.high is not None
    assert pref.low <= pref.share <= pref.high


def test_preference_has_no_share_without_a_decisive_impression() -> None:
    pref = interleaving.preference([0, 0], [0, 0], ties=[3, 0])
    assert (pref.share, pref.low, pref.high, pref.users) == (None, None, None, 1)


def test_preference_has_no_interval_from_one_user() -> None:
    pref = interleaving.preference([2, 0], [5, 0])
    assert pref.share == pytest.approx(5 / 7)
    assert (pref.low, pref.high) == (None, None)


def test_preference_rejects_mismatched_or_negative_counts() -> None:
    with pytest.raises(ValueError):
        interleaving.preference([1, 2], [1])
    with pytest.raises(ValueError):
        interleaving.preference([1, -1], [1, 1])


def test_preference_is_reproducible_by_seed() -> None:
    live, challenger = [3, 1, 0, 2, 5], [1, 4, 2, 2, 0]
    assert interleaving.preference(live, challenger, seed=3) == interleaving.preference(live, challenger, seed=3)


def clustered_users(generator: np.random.Generator, num_users: int, true_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Users who each lean hard one way (their own share from a Beta around `true_share`) over several decisive
    impressions: the impressions of one user are correlated, as when the same person keeps clicking."""
    own = generator.beta(true_share * 2, (1 - true_share) * 2, num_users)
    decisive = generator.poisson(6, num_users) + 1
    challenger = generator.binomial(decisive, own)
    return decisive - challenger, challenger


def test_the_interval_covers_the_true_share_about_95_percent_of_the_time() -> None:
    generator = np.random.default_rng(0)
    covered = []
    for run in range(200):
        live, challenger = clustered_users(generator, 300, 0.6)
        pref = interleaving.preference(live, challenger, seed=run)
        assert pref.low is not None and pref.high is not None
        covered.append(pref.low <= 0.6 <= pref.high)
    assert 0.9 <= np.mean(covered) <= 0.99


def test_the_interval_is_wider_than_the_binomial_one_when_users_are_correlated() -> None:
    live, challenger = clustered_users(np.random.default_rng(1), 500, 0.6)
    pref = interleaving.preference(live, challenger)
    assert pref.share is not None and pref.low is not None and pref.high is not None
    decisive = pref.live_wins + pref.challenger_wins
    binomial_half_width = 1.96 * np.sqrt(pref.share * (1 - pref.share) / decisive)
    assert (pref.high - pref.low) / 2 > 1.5 * binomial_half_width
    assert interleaving.design_effect(pref) > 2.0


def test_the_interval_matches_the_binomial_one_when_impressions_are_independent() -> None:
    generator = np.random.default_rng(2)
    challenger = generator.binomial(1, 0.6, 5000)
    pref = interleaving.preference(1 - challenger, challenger)
    assert pref.share is not None and pref.low is not None and pref.high is not None
    binomial_half_width = 1.96 * np.sqrt(pref.share * (1 - pref.share) / 5000)
    assert (pref.high - pref.low) / 2 == pytest.approx(binomial_half_width, rel=0.1)


def test_preference_over_10k_users_takes_under_a_fifth_of_a_second() -> None:
    generator = np.random.default_rng(3)
    impressions = generator.geometric(1 / 8, 10_000)
    decisive = generator.binomial(impressions, 0.3)
    challenger = generator.binomial(decisive, 0.55)
    started = time.process_time()  # CPU time: the benchmark running beside the tests does not count
    interleaving.preference(decisive - challenger, challenger, impressions - decisive)
    assert time.process_time() - started < 0.2


def made(live_wins: int, challenger_wins: int, low: float | None, high: float | None) -> Preference:
    share = challenger_wins / (live_wins + challenger_wins) if live_wins + challenger_wins else None
    return Preference(live_wins, challenger_wins, 0, 100, share, low, high)


def test_days_needed_is_zero_once_the_interval_excludes_half() -> None:
    assert interleaving.days_needed(made(400, 600, 0.56, 0.64), days_elapsed=3) == 0
    assert interleaving.days_needed(made(600, 400, 0.36, 0.44), days_elapsed=3) == 0


def test_days_needed_is_none_before_anything_decisive() -> None:
    assert interleaving.days_needed(made(0, 0, None, None), days_elapsed=3) is None
    assert interleaving.days_needed(made(10, 12, 0.3, 0.7), days_elapsed=0) is None


def test_days_needed_falls_as_traffic_comes_in() -> None:
    remaining = []
    for day in (1, 2, 3, 4):
        live, challenger = 48 * day, 52 * day  # a share of 0.52, below the smallest effect of interest
        half_width = 1.96 * np.sqrt(0.52 * 0.48 / (100 * day))
        remaining.append(interleaving.days_needed(made(live, challenger, 0.52 - half_width, 0.52 + half_width), day))
    assert all(a is not None and b is not None and a > b for a, b in zip(remaining, remaining[1:]))


def test_days_needed_uses_the_smallest_effect_of_interest_below_it() -> None:
    half_width = 1.96 * np.sqrt(0.25 / 100)
    days = interleaving.days_needed(made(50, 50, 0.5 - half_width, 0.5 + half_width), days_elapsed=1)
    # 1.96^2 * 0.55 * 0.45 / 0.05^2 = 380.3 decisive impressions at 100 a day, 100 of them seen
    assert days == pytest.approx((380.3 - 100) / 100, rel=1e-3)


def test_days_needed_grows_with_the_design_effect() -> None:
    independent = 1.96 * np.sqrt(0.52 * 0.48 / 100)
    narrow = interleaving.days_needed(made(48, 52, 0.52 - independent, 0.52 + independent), 1)
    wide = interleaving.days_needed(made(48, 52, 0.52 - 2 * independent, 0.52 + 2 * independent), 1)
    assert narrow is not None and wide is not None
    assert wide + 1 == pytest.approx(4 * (narrow + 1), rel=1e-6)  # twice the width: four times the impressions


def test_days_needed_for_more_power_is_longer() -> None:
    half_width = 1.96 * np.sqrt(0.25 / 100)
    pref = made(50, 50, 0.5 - half_width, 0.5 + half_width)
    at_half = interleaving.days_needed(pref, 1)
    at_80 = interleaving.days_needed(pref, 1, power=0.8)
    assert at_half is not None and at_80 is not None
    assert at_80 + 1 == pytest.approx((at_half + 1) * ((1.96 + 0.8416) / 1.96) ** 2, rel=1e-3)
