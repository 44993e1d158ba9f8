"""Server-rendered SVG charts of training curves and metric history (matplotlib, no JavaScript)."""

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # real <text>: smaller, searchable, read by screen readers
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue so it can sit inside HTML


def training_curves(history: list[dict[str, Any]]) -> str:
    """Loss and validation HR@10/NDCG@10 per epoch, side by side."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3))
    loss_axis.plot(epochs, [row["loss"] for row in history], marker="o")
    loss_axis.set(title="Training loss", xlabel="epoch")
    for metric in ("hr@10", "ndcg@10"):
        metric_axis.plot(epochs, [row["validation"].get(metric, 0) for row in history], marker="o", label=metric)
    metric_axis.set(title="Validation", xlabel="epoch")
    metric_axis.legend()
    return _svg(figure)


def metric_history(runs: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> str:
    """Test HR@10 of PinSage and EASE across runs, oldest first: (run id, test metrics, baseline metrics)."""
    figure, axis = plt.subplots(figsize=(9, 3))
    ids = [str(run_id) for run_id, _, _ in runs]
    axis.plot(ids, [test.get("hr@10", 0) for _, test, _ in runs], marker="o", label="PinSage test HR@10")
    axis.plot(
        ids,
        [base.get("ease", {}).get("test", {}).get("hr@10", float("nan")) for _, _, base in runs],
        marker="s",
        linestyle="--",
        label="EASE test HR@10",
    )
    axis.set(title="Metric history across training runs", xlabel="training run")
    axis.legend()
    return _svg(figure)
