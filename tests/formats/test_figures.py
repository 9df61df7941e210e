"""Charts draw text from data (column names, class labels) literally: a `$` never starts
matplotlib's math mode, where `$_$` or `$\\frac$` raised (a 500 from the plot routes)."""

import re

import matplotlib
import pytest

from service.formats import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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
