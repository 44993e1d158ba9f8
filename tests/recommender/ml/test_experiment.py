"""recommender/ml/experiment.py: the baseline grids a run and a full experiment try."""


def test_the_runs_short_baseline_grid_is_a_part_of_the_full_one() -> None:
    from recommender.ml.experiment import BASELINE_GRIDS, RUN_BASELINE_GRIDS

    assert RUN_BASELINE_GRIDS.keys() == BASELINE_GRIDS.keys()
    assert all(point in BASELINE_GRIDS[name] for name, grid in RUN_BASELINE_GRIDS.items() for point in grid)
