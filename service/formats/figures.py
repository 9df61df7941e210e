"""Figures drawn with matplotlib, rendered to PNG (Agg) or SVG.

No pyplot: each figure is its own object with no global state, so API threads draw at once.
Text that comes from data (column names, class labels, metric and layer names) goes through
`literal`: matplotlib reads text between two `$` as TeX math, where `$_$` raises.
"""

import io
import math
from typing import Any, Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TABLEAU_COLORS
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.rcsetup import cycler
from matplotlib.ticker import MaxNLocator

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
Scale = Literal["linear", "log"]
FLOOR_NOTE = "0 shown at floor"
TABLEAU = list(TABLEAU_COLORS.values())
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


def learning_curves(
    epochs: list[int], metrics: list[dict[str, float]], scale: Scale = "linear"
) -> Figure:
    """One panel per loss or metric: training against validation, over the epochs."""
    names: list[str] = []
    for row in metrics:
        for name in row:
            base = name.removeprefix("val_")
            if base not in names:
                names.append(base)
    names = names[:_MAX_PANELS]
    title = "Learning curves" + (" (log scale)" if scale == "log" else "")
    figure, axes = _panels(len(names), title)
    for ax, name in zip(axes, names, strict=True):
        series = {
            label: [row.get(key) for row in metrics]
            for key, label in ((name, "training"), (f"val_{name}", "validation"))
        }
        series = {label: values for label, values in series.items() if _drawable(values)}
        note = _draw(ax, epochs, series, scale)
        ax.set_ylabel(literal(name))
        if note:
            ax.set_title(literal(note), fontsize=8, color="gray", wrap=True)
    _legend(figure, axes, "outside lower center")
    return figure


def gradient_norms(
    epochs: list[int],
    norms: dict[str, list[float | None]],
    flagged: dict[int, list[str]],
    scale: Scale = "log",
) -> Figure:
    """Each kernel's gradient norm over the epochs (log scale unless asked otherwise); flagged
    epochs shaded, and the last flag named."""
    columns = -(-(len(norms) + 2) // 15)  # the legend's columns (see _legend)
    figure = Figure(figsize=(6.6 + 1.8 * columns, 4.8), layout="constrained")
    ax = figure.subplots()
    note = _draw(ax, epochs, norms, scale)
    ax.set_ylabel("kernel gradient norm (probe batch)")
    for epoch in flagged:
        ax.axvspan(epoch - 0.5, epoch + 0.5, color="red", alpha=0.1, linewidth=0)
    # The title over the axes only (not the figure), so the legend beside it never covers it.
    lines = ["Gradient norms per layer" + (" (log scale)" if scale == "log" else "")]
    if flagged:
        last = max(flagged)
        lines.append(f"epoch {last} flagged: {', '.join(sorted(set(flagged[last])))}")
    ax.set_title(literal("\n".join(lines + ([note] if note else []))), fontsize=10)
    extra = [Patch(color="red", alpha=0.1, label="flagged epoch")] if flagged else []
    _legend(figure, [ax], "outside right upper", extra)
    return figure


def _drawable(values: list[float | None]) -> bool:
    return bool(_known(values))


def _known(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _floor(known: list[float]) -> float:
    """Where a log axis draws the values it cannot (0 and below): a decade under the smallest
    positive value, or 1 when there is none."""
    positive = [v for v in known if v > 0]
    return 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0


def _draw(
    ax: Any, epochs: list[int], series: dict[str, list[float | None]], scale: Scale
) -> str | None:
    """A line per series, whatever its values. On a log axis a value of 0 or below is drawn at
    a floor (a dashed line, the points hollow) and noted: never dropped. Returns a note naming
    the series that are 0 at every epoch (their lines lie on the floor, one over another)."""
    known = _known([v for values in series.values() for v in values])
    floor = _floor(known) if scale == "log" and any(v <= 0 for v in known) else None
    marker = "." if len(epochs) < 30 else None
    # Ten colours, solid, then dashed, dotted...: a deep network's layers stay apart.
    ax.set_prop_cycle(cycler(linestyle=["-", "--", ":", "-."]) * cycler(color=TABLEAU))
    at_floor: list[str] = []
    for name, values in series.items():
        points = [v if v is not None and math.isfinite(v) else math.nan for v in values]
        low = [e for e, v in zip(epochs, points, strict=True) if v <= 0]
        if floor is not None:
            points = [floor if v <= 0 else v for v in points]
        (line,) = ax.plot(epochs, points, marker=marker, label=literal(name))
        if floor is not None and low:
            ax.plot(
                low, [floor] * len(low), linestyle="none", marker="o", markersize=7,
                markerfacecolor="none", color=line.get_color(),
            )  # fmt: skip
            if len(low) == len(_known(values)):
                at_floor.append(name)
    if scale == "log":
        ax.set_yscale("log")
    if floor is not None:
        ax.axhline(floor, color="black", linestyle="--", linewidth=1)
        negative = any(v < 0 for v in known)
        # The legend's entry: the floor line with a hollow point on it.
        ax.plot(
            [], [], color="black", linestyle="--", linewidth=1, marker="o", markerfacecolor="none",
            label="≤ 0 shown at floor" if negative else FLOOR_NOTE,
        )  # fmt: skip
        if any(v > 0 for v in known):
            ax.set_ylim(bottom=floor / 3)
        else:  # nothing but zeros: the floor is the only value, so its tick reads 0
            ax.set_ylim(floor / 10, floor * 10)
            ax.set_yticks([floor], ["0"])
            ax.minorticks_off()
    ax.set_xlabel("epoch")
    if epochs:  # epochs only: shading around a flagged epoch must not widen the axis to 0
        margin = max(0.5, 0.03 * (max(epochs) - min(epochs)))
        ax.set_xlim(min(epochs) - margin, max(epochs) + margin)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3, which="both")
    if at_floor and len(at_floor) == len(series) > 1:
        return f"all {len(at_floor)} series are 0 at every epoch: their lines lie on the floor"
    return f"0 at every epoch: {', '.join(at_floor)}" if at_floor else None


LegendPlace = Literal["outside lower center", "outside right upper"]


def _legend(
    figure: Figure, axes: list[Any], loc: LegendPlace, extra: list[Any] | None = None
) -> None:
    """One legend for the figure, outside the axes so it covers no data."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    for handle in extra or []:
        entries[handle.get_label()] = handle
    if entries:
        # Below the panels: one row (up to 4); right of them: a column per 14 entries, so a
        # deep network's legend still fits the figure's height.
        columns = min(len(entries), 4) if loc == "outside lower center" else -(-len(entries) // 15)
        figure.legend(list(entries.values()), list(entries), loc=loc, ncols=columns)


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
