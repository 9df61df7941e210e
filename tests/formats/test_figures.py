"""Charts draw text from data (column names, class labels) literally: a `$` never starts
matplotlib's math mode, where `$_$` or `$\\frac$` raised (a 500 from the plot routes)."""

import re
from pathlib import Path

import matplotlib
import matplotlib.axes
import matplotlib.figure
import matplotlib.lines
import pytest

from service.formats import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUT = Path(__file__).resolve().parents[1] / "output" / "plots"
# Each raised "ParseSyntaxException" (or "ParseException") before the fix; `$x$` drew an
# italic x.
LABELS = ["$x$", "$", "$_$", "$^$", "$$", r"$\frac$", "price $x_$", r"a\$b", "plain"]


def _svg_texts(figure: matplotlib.figure.Figure) -> set[str]:
    """The text runs of the figure's SVG, written as text (not glyph outlines)."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = figures.render(figure, "svg").decode()
    return set(re.findall(r">([^<>]+)</text>", svg))


def test_confusion_matrix_draws_dollar_labels_literally() -> None:
    counts = [[i + j for j in range(len(LABELS))] for i in range(len(LABELS))]

    png = figures.render(figures.confusion_matrix(LABELS, counts, "test"), "png")
    texts = _svg_texts(figures.confusion_matrix(LABELS, counts, "test"))

    assert png.startswith(PNG_MAGIC)
    assert set(LABELS) <= texts


def test_predicted_vs_actual_draws_dollar_targets_literally() -> None:
    pairs = {label: {"actual": [1.0, 2.0], "predicted": [1.5, 2.5]} for label in LABELS}

    png = figures.render(figures.predicted_vs_actual(pairs, "test"), "png")

    assert png.startswith(PNG_MAGIC)
    assert set(LABELS) <= _svg_texts(figures.predicted_vs_actual(pairs, "test"))


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_learning_curves_and_gradient_norms_draw_dollar_names(fmt: str) -> None:
    row = {name: value for label in LABELS for name, value in ((label, 1.0), (f"val_{label}", 2.0))}
    norms = {label: [1.0, 0.5] for label in LABELS}

    curves = figures.render(figures.learning_curves([1, 2], [row, row]), fmt)
    gradients = figures.render(figures.gradient_norms([1, 2], norms, {2: ["$_$"]}), fmt)

    assert curves and gradients
    assert set(LABELS) <= _svg_texts(figures.learning_curves([1, 2], [row, row]))
    assert set(LABELS) <= _svg_texts(figures.gradient_norms([1, 2], norms, {}))


def _drawn(figure: matplotlib.figure.Figure, sample: str | None = None) -> matplotlib.figure.Figure:
    """The figure laid out (ticks and extents final); saved as tests/output/plots/<sample> to
    look at."""
    png = figures.render(figure, "png")
    if sample:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / sample).write_bytes(png)
    return figure


def _series_lines(ax: matplotlib.axes.Axes) -> dict[str, matplotlib.lines.Line2D]:
    return {line.get_label(): line for line in ax.get_lines() if line.get_xydata().size}


def _assert_legend_outside_axes(figure: matplotlib.figure.Figure) -> None:
    [legend] = figure.legends
    box = legend.get_window_extent()
    for ax in figure.axes:
        assert not box.overlaps(ax.get_window_extent()), "the legend covers an axes"


def _assert_integer_epoch_ticks(ax: matplotlib.axes.Axes) -> None:
    low, high = ax.get_xlim()
    ticks = [tick for tick in ax.get_xticks() if low <= tick <= high]
    assert ticks and all(float(tick).is_integer() for tick in ticks), ticks
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel()


def test_gradient_norms_all_zero_draws_every_layer_at_the_floor_and_says_so() -> None:
    names = [f"dense_{i}" for i in range(1, 7)] + ["output"]
    norms: dict[str, list[float | None]] = {name: [0.0, 0.0, 0.0] for name in names}

    figure = _drawn(figures.gradient_norms([1, 2, 3], norms, {1: ["dead"], 3: ["dead"]}))

    [ax] = figure.axes
    lines = _series_lines(ax)
    assert set(names) <= set(lines)  # a line for every layer, none dropped
    floors = {float(y) for name in names for y in lines[name].get_ydata()}
    assert len(floors) == 1 and ax.get_yscale() == "log"
    [floor] = floors
    assert any(list(line.get_ydata()) == [floor, floor] for line in ax.get_lines())  # dashed
    hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert len([line for line in hollow if line.get_label().startswith("_")]) == len(names)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert figures.FLOOR_NOTE in legend and "flagged epoch" in legend
    assert set(names) <= set(legend)
    assert "Gradient norms per layer (log scale)\nepoch 3 flagged: dead\n" in ax.get_title()
    assert "all 7 series are 0 at every epoch" in ax.get_title()
    assert [label.get_text() for label in ax.get_yticklabels()] == ["0"]
    _assert_legend_outside_axes(figure)
    _assert_integer_epoch_ticks(ax)


def test_gradient_norms_with_some_zeros_keep_their_positive_points() -> None:
    norms: dict[str, list[float | None]] = {"dense_1": [2e-3, 0.0, 0.0], "output": [4.0, 3.0, 0.0]}

    figure = _drawn(figures.gradient_norms([1, 2, 3], norms, {}), "gradient-norms-some-zeros.png")

    [ax] = figure.axes
    lines = _series_lines(ax)
    floor = lines["dense_1"].get_ydata()[1]
    assert floor == pytest.approx(1e-4)  # a decade under the smallest positive norm
    assert list(lines["dense_1"].get_ydata()) == [2e-3, floor, floor]
    assert list(lines["output"].get_ydata()) == [4.0, 3.0, floor]
    assert "0 at every epoch" not in ax.get_title()


def test_gradient_norms_on_a_linear_scale_draw_zeros_as_zeros() -> None:
    norms: dict[str, list[float | None]] = {"dense_1": [0.0, 1.0], "output": [2.0, 3.0]}

    figure = _drawn(figures.gradient_norms([1, 2], norms, {}, scale="linear"))

    [ax] = figure.axes
    assert ax.get_yscale() == "linear"
    assert list(_series_lines(ax)["dense_1"].get_ydata()) == [0.0, 1.0]
    assert figures.FLOOR_NOTE not in [t.get_text() for t in figure.legends[0].get_texts()]


@pytest.mark.parametrize("epochs", [1, 2, 7, 30, 250])
def test_learning_curves_have_integer_epoch_ticks_and_the_legend_outside(epochs: int) -> None:
    rows = [
        {"loss": 100.0 / e, "val_loss": 120.0 / e, "mae": 9.0 / e} for e in range(1, epochs + 1)
    ]

    figure = _drawn(figures.learning_curves(list(range(1, epochs + 1)), rows))

    assert len(figure.axes) == 2
    for ax in figure.axes:
        _assert_integer_epoch_ticks(ax)
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "mae"]
    assert set(_series_lines(figure.axes[0])) == {"training", "validation"}
    _assert_legend_outside_axes(figure)


def test_learning_curves_on_a_log_scale_show_a_zero_loss_at_the_floor() -> None:
    rows = [{"loss": 10.0, "val_loss": 20.0}, {"loss": 0.0, "val_loss": 2.0}]

    figure = _drawn(figures.learning_curves([1, 2], rows, scale="log"))

    [ax] = figure.axes
    assert ax.get_yscale() == "log" and figure.get_suptitle() == "Learning curves (log scale)"
    assert list(_series_lines(ax)["training"].get_ydata()) == [
        10.0,
        0.1,
    ]  # the floor: the decade under 2
    assert figures.FLOOR_NOTE in [t.get_text() for t in figure.legends[0].get_texts()]


def test_gradient_norms_of_a_deep_network_keep_the_legend_inside_the_figure() -> None:
    norms: dict[str, list[float | None]] = {f"dense_{i}": [1.0 + i, 2.0 + i] for i in range(30)}

    figure = _drawn(figures.gradient_norms([1, 2], norms, {}), "gradient-norms-30-layers.png")

    box = figure.legends[0].get_window_extent()
    assert box.y0 >= 0 and box.y1 <= figure.bbox.height and box.x1 <= figure.bbox.width
    _assert_legend_outside_axes(figure)
