"""recommender/ml/config.py, the training settings: one typed tree, merged deeply, and a typo is an error that
names it."""

import pytest

from recommender.ml.config import InvalidSetting, TrainingConfig, WalkConfig, check_overrides, deep_merged


def test_a_mistyped_or_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(InvalidSetting, match="'walk.num_layer'"):
        TrainingConfig().with_overrides({"walk": {"num_layer": 2}})
    with pytest.raises(InvalidSetting, match="'learning_rte'"):
        check_overrides({"learning_rte": 0.01})
    with pytest.raises(InvalidSetting, match="'epochs' is '12'"):
        check_overrides({"epochs": "12"})
    with pytest.raises(InvalidSetting, match="'use_id_embedding'"):
        check_overrides({"use_id_embedding": 1})
    check_overrides({"learning_rate": 1, "scoring": {"min_stars": 3.5}})  # an int where a float goes is fine


def test_nested_overrides_keep_their_siblings() -> None:
    base = TrainingConfig(walk=WalkConfig(num_random_walks=7))
    assert base.with_overrides({"walk": {"num_layers": 2}}).walk == WalkConfig(num_layers=2, num_random_walks=7)
    assert deep_merged({"walk": {"a": 1, "b": 2}, "x": 1}, {"walk": {"b": 3}}) == {"walk": {"a": 1, "b": 3}, "x": 1}


def test_a_stored_config_with_settings_that_no_longer_exist_still_loads() -> None:
    assert TrainingConfig.from_dict({"epochs": 3, "retired": True, "walk": {"gone": 1}}).epochs == 3


def test_reading_the_settings_loads_neither_torch_nor_dgl() -> None:
    from tests.conftest import modules_loaded_after

    loaded = modules_loaded_after("import recommender.ml.config")
    assert "torch" not in loaded and "dgl" not in loaded
