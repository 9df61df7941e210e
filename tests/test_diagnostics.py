"""The rules that flag dead layers, vanishing and exploding gradients (service/diagnostics.py)."""

import math
from typing import Any

from service import diagnostics


def _layers(
    *norms: float | None, activation: str = "sigmoid", dead: tuple[float, ...] = ()
) -> list[dict[str, Any]]:
    """Hidden layers dense_1... then output; `dead` gives the relu layers' dead fractions."""
    rows = []
    for index, norm in enumerate(norms, start=1):
        last = index == len(norms)
        finite = norm is None or math.isfinite(norm)
        relu = activation == "relu" and not last
        rows.append(
            {
                "name": "output" if last else f"dense_{index}",
                "type": "Dense",
                "activation": "linear" if last else activation,
                "gradient_norm": norm if finite else None,
                "gradient_finite": finite,
                "dead_fraction": (dead[index - 1] if index <= len(dead) else 0.0) if relu else None,
                "saturated_fraction": None if last or relu else 0.0,
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


def test_assess_relu_network_with_every_hidden_gradient_zero_is_dead_not_vanishing() -> None:
    # The course's ReLU net under SGD 0.01 after epoch 1: every unit dead, every gradient 0.
    flags = diagnostics.assess(_layers(0.0, 0.0, 0.0, 0.0, activation="relu", dead=(1.0,) * 3))

    assert [flag["kind"] for flag in flags] == ["dead"]
    assert flags[0]["rule"] == diagnostics.RULES["dead"]
    assert "not vanishing" in flags[0]["rule"]
    assert flags[0]["layers"] == ["dense_1", "dense_2", "dense_3", "output"]
    assert flags[0]["detail"].startswith("every hidden layer is dead")
    assert "dense_2: every unit of its relu outputs 0 on every sample" in flags[0]["detail"]
    assert "output: kernel gradient norm exactly 0" in flags[0]["detail"]


def test_assess_zero_first_gradient_under_a_live_output_is_dead_not_vanishing() -> None:
    flags = diagnostics.assess(_layers(0.0, 0.5, 14.0))

    assert [flag["kind"] for flag in flags] == ["dead"]
    assert flags[0]["layers"] == ["dense_1"]
    assert flags[0]["detail"] == "dense_1: kernel gradient norm exactly 0"


def test_assess_relu_layer_with_all_units_dead_is_dead() -> None:
    flags = diagnostics.assess(_layers(0.0, 0.0, 3.0, 2.0, activation="relu", dead=(0.2, 1.0)))

    assert [flag["kind"] for flag in flags] == ["dead"]
    assert flags[0]["layers"] == ["dense_1", "dense_2"]
    assert not flags[0]["detail"].startswith("every hidden layer")
    assert (
        "dense_2: every unit of its relu outputs 0 on every sample and kernel gradient"
        in (flags[0]["detail"])
    )


def test_assess_relu_layer_with_most_units_dead_is_not_flagged() -> None:
    assert diagnostics.assess(_layers(0.4, 0.9, 2.0, activation="relu", dead=(0.9, 0.5))) == []


def test_ratio_is_first_kernel_over_output_kernel() -> None:
    layers = _layers(1.0, None, 4.0)
    layers[1]["type"] = "Activation"

    assert diagnostics.ratio(layers) == 0.25
    assert diagnostics.ratio(_layers(3.0)) is None
