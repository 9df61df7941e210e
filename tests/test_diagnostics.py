"""The rules that flag vanishing and exploding gradients (service/diagnostics.py)."""

import math
from typing import Any

from service import diagnostics


def _layers(*norms: float | None, activation: str = "sigmoid") -> list[dict[str, Any]]:
    rows = []
    for index, norm in enumerate(norms, start=1):
        last = index == len(norms)
        finite = norm is None or math.isfinite(norm)
        rows.append(
            {
                "name": "output" if last else f"dense_{index}",
                "type": "Dense",
                "activation": "linear" if last else activation,
                "gradient_norm": norm if finite else None,
                "gradient_finite": finite,
                "dead_fraction": None,
                "saturated_fraction": None if last else 0.0,
            }
        )
    return rows


def test_assess_small_first_to_output_ratio_flags_vanishing_with_its_rule() -> None:
    flags = diagnostics.assess(_layers(2e-3, 0.05, 0.5, 14.0))

    assert [flag["kind"] for flag in flags] == ["vanishing"]
    assert flags[0]["rule"] == diagnostics.RULES["vanishing"]
    assert "< 1e-03" in flags[0]["rule"]
    assert flags[0]["layers"] == ["dense_1", "output"]
    assert "dense_1 (2.00e-03) / output (1.40e+01) = 1.43e-04" in flags[0]["detail"]


def test_assess_healthy_norms_raise_no_flag() -> None:
    assert diagnostics.assess(_layers(14.7, 25.5, 42.7, 32.8, activation="relu")) == []


def test_assess_ratio_at_the_threshold_is_not_vanishing() -> None:
    assert diagnostics.assess(_layers(1e-3, 1.0)) == []


def test_assess_growing_norms_flag_exploding() -> None:
    flags = diagnostics.assess(_layers(5e3, 40.0, 2.0))

    assert [flag["kind"] for flag in flags] == ["exploding"]
    assert "> 1e+03" in flags[0]["detail"] and flags[0]["layers"] == ["dense_1", "output"]


def test_assess_huge_or_non_finite_norm_flags_exploding() -> None:
    huge = diagnostics.assess(_layers(2e6, 3e6))
    broken = diagnostics.assess(_layers(math.nan, 1.0))

    assert {flag["kind"] for flag in huge} == {"exploding"}
    assert any("dense_1: kernel gradient norm 2.00e+06 > 1e+06" in f["detail"] for f in huge)
    assert [flag["kind"] for flag in broken] == ["exploding"]
    assert "not finite" in broken[0]["detail"] and broken[0]["layers"] == ["dense_1"]


def test_ratio_is_first_kernel_over_output_kernel() -> None:
    layers = _layers(1.0, None, 4.0)
    layers[1]["type"] = "Activation"

    assert diagnostics.ratio(layers) == 0.25
    assert diagnostics.ratio(_layers(3.0)) is None
