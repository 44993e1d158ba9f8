"""recommender/ml/artifact.py: a trained model saved and loaded as one typed object."""

from pathlib import Path


def test_the_model_artifact_round_trips_as_one_typed_object(tmp_path: Path) -> None:
    import numpy as np

    from recommender.ml.artifact import ModelArtifact

    saved = ModelArtifact(
        {"w": np.ones(2)},
        {"hidden_dim": 4},
        np.array([3, 7, 9]),
        ("matrix",),
        ("Drama",),
        np.eye(3, 4, dtype=np.float32),
    )
    loaded = ModelArtifact.load(saved.save(tmp_path / "run-1.pt"))
    assert loaded.config == {"hidden_dim": 4} and loaded.vocabulary == ("matrix",) and loaded.genre_names == ("Drama",)
    assert np.array_equal(loaded.movie_ids, [3, 7, 9]) and np.array_equal(loaded.embeddings, saved.embeddings)
    assert loaded.row_of(7) == 1 and loaded.row_of(8) is None
    assert not list(tmp_path.glob("*.part"))
