"""Figures drawn with matplotlib, rendered to PNG (Agg) or SVG.

No pyplot: each figure is its own object with no global state, so API threads draw at once.
Text that comes from data (column names, class labels, metric and layer names) goes through
`literal`: matplotlib reads text between two `$` as TeX math, where `$_$` raises.
"""

import io
import math
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
_MAX_PANELS = 12  # metrics or targets drawn; more would make unreadable panels


def literal(text: object) -> str:
    """`text` as matplotlib draws it verbatim: each `$` escaped, so none starts math mode
    (matplotlib turns `\\$` back into `$` in text that is not math)."""
    return str(text).replace("$", r"\$")


def render(figure: Figure, fmt: str) -> bytes:
    FigureCanvasAgg(figure)  # PNG through Agg; SVG through matplotlib's SVG writer
    buffer = io.BytesIO()
    metadata = {"Software": "dendrite"} if fmt == "png" else {"Date": None}
    figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def _panels(count: int, title: str) -> tuple[Figure, list[Any]]:
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    figure.suptitle(literal(title))
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, list(axes[:count])


def learning_curves(epochs: list[int], metrics: list[dict[str, float]]) -> Figure:
    """One panel per loss or metric: training against validation, over the epochs."""
    names: list[str] = []
    for row in metrics:
        for name in row:
            base = name.removeprefix("val_")
            if base not in names:
                names.append(base)
    names = names[:_MAX_PANELS]
    figure, axes = _panels(len(names), "Learning curves")
    for ax, name in zip(axes, names, strict=True):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            values = [row.get(key, math.nan) for row in metrics]
            if any(not math.isnan(v) for v in values):
                ax.plot(epochs, values, marker="." if len(epochs) < 30 else None, label=label)
        ax.set_title(literal(name))
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    return figure


def confusion_matrix(labels: list[Any], counts: list[list[int]], split: str) -> Figure:
    """Rows: the true class; columns: the predicted class; each cell a count."""
    classes = len(labels)
    size = min(max(4.0, 0.5 * classes + 2.5), 14.0)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    total = sum(sum(row) for row in counts)
    correct = sum(counts[i][i] for i in range(classes))
    accuracy = correct / max(total, 1)
    ax.set_title(literal(f"Confusion matrix ({split} split, accuracy {accuracy:.3f})"))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if classes <= 30:
        names = [literal(label) for label in labels]
        ax.set_xticks(range(classes), names, rotation=45 if classes > 8 else 0, ha="right")
        ax.set_yticks(range(classes), names)
    if classes <= 20:
        peak = max((max(row) for row in counts), default=0)
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                color = "white" if count > peak / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    return figure


def gradient_norms(
    epochs: list[int], norms: dict[str, list[float | None]], flagged: dict[int, list[str]]
) -> Figure:
    """Each kernel's gradient norm over the epochs, on a log scale; flagged epochs marked."""
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    ax = figure.subplots()
    for name, values in norms.items():
        points = [v if v is not None and v > 0 else math.nan for v in values]
        ax.plot(epochs, points, marker="." if len(epochs) < 30 else None, label=literal(name))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("kernel gradient norm (probe batch)")
    ax.set_title("Gradient norms per layer")
    for epoch in flagged:
        ax.axvline(epoch, color="red", alpha=0.15)
    if flagged:
        last = max(flagged)
        ax.text(
            0.01, 0.01,
            literal(f"flagged: {', '.join(sorted(set(flagged[last])))} (epoch {last})"),
            transform=ax.transAxes, color="red", fontsize=9,
        )  # fmt: skip
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3, which="both")
    return figure


def predicted_vs_actual(pairs: dict[str, dict[str, list[float]]], split: str) -> Figure:
    """One scatter per target, with the diagonal where a perfect model's points would lie."""
    targets = list(pairs)[:_MAX_PANELS]
    figure, axes = _panels(len(targets), f"Predicted vs actual ({split} split)")
    for ax, target in zip(axes, targets, strict=True):
        actual, predicted = pairs[target]["actual"], pairs[target]["predicted"]
        ax.scatter(actual, predicted, s=10, alpha=0.6)
        low = min(min(actual, default=0.0), min(predicted, default=0.0))
        high = max(max(actual, default=1.0), max(predicted, default=1.0))
        ax.plot([low, high], [low, high], color="gray", linestyle="--", linewidth=1)
        ax.set_title(literal(target))
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.grid(alpha=0.3)
    return figure
