"""Forward propagation layer by layer and weights, from models saved as the worker saves them."""

import numpy as np
import pytest

from service.core.config import Settings, get_settings
from service.core.errors import InvalidInput
from service.ml import inspection
from tests.ml.conftest import Save, Trained

PENGUIN = {"island": "Dream", "bill_length_mm": 39.5, "bill_depth_mm": 17.9}


def test_forward_lists_inputs_preprocessing_and_layers_in_order(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)

    layers = inspection.forward(key, penguin_species.input_schema(), PENGUIN)

    names = [layer["name"] for layer in layers]
    assert names == [layer.name for layer in penguin_species.model.layers]
    by_name = {layer["name"]: layer for layer in layers}
    assert by_name["island"]["output"]["text"] == ["Dream"]
    assert by_name["island_one_hot"]["type"] == "StringLookup"
    assert sum(by_name["island_one_hot"]["output"]["values"]) == 1.0  # one-hot
    assert by_name["dense_1"]["activation"] == "relu"
    assert min(by_name["dense_1"]["output"]["values"]) >= 0.0
    output = by_name["output"]
    assert output["activation"] == "softmax" and output["output"]["shape"] == [3]
    expected = penguin_species.model.predict_on_batch(
        {
            "island": np.array([["Dream"]], dtype=object).astype(str),
            "bill_length_mm": np.array([[39.5]], "float32"),
            "bill_depth_mm": np.array([[17.9]], "float32"),
        }
    )
    np.testing.assert_allclose(output["output"]["values"], expected[0], rtol=1e-6)


def test_forward_normalize_layer_standardizes_the_raw_numbers(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)

    layers = inspection.forward(key, penguin_species.input_schema(), PENGUIN)

    normalized = next(layer for layer in layers if layer["name"] == "normalize")
    stats = penguin_species.prepared.normalization
    assert stats is not None
    expected = (np.array([39.5, 17.9]) - np.ravel(stats.mean)) / np.sqrt(np.ravel(stats.variance))
    np.testing.assert_allclose(normalized["output"]["values"], expected, rtol=1e-4)


def test_forward_of_large_outputs_gives_shape_and_stats_only(
    digits: Trained, save: Save, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_INSPECT_MAX_VALUES", "100")
    get_settings.cache_clear()
    key = save(digits)
    image = digits.prepared.test.x[0] if digits.prepared.test else None
    assert image is not None

    layers = inspection.forward(key, digits.input_schema(), image.tolist())

    by_name = {layer["name"]: layer["output"] for layer in layers}
    assert by_name["x"]["shape"] == [28, 28] and "values" not in by_name["x"]
    assert by_name["scale_pixels"]["max"] <= 1.0 and by_name["x"]["max"] > 1.0
    assert by_name["conv2d_1"]["shape"] == [26, 26, 4] and "values" not in by_name["conv2d_1"]
    assert len(by_name["output"]["values"]) == 10  # 10 values: listed


def test_forward_bad_row_names_the_field_of_the_instance(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)

    with pytest.raises(InvalidInput) as raised:
        inspection.forward(key, penguin_species.input_schema(), {"island": "Dream"})

    assert raised.value.field == "/instance/bill_length_mm"
    assert "the instance lacks feature 'bill_length_mm'" in raised.value.detail


def test_weights_give_shapes_stats_and_values_of_small_arrays(
    penguin_species: Trained, save: Save, settings: Settings
) -> None:
    key = save(penguin_species)

    layers = {layer["name"]: layer for layer in inspection.weights(key)}

    dense = layers["dense_1"]
    kernel, bias = dense["weights"]
    model_kernel = penguin_species.model.get_layer("dense_1").kernel.numpy()
    assert (kernel["name"], bias["name"]) == ("kernel", "bias")
    assert kernel["stats"]["shape"] == list(model_kernel.shape) and kernel["trainable"]
    np.testing.assert_allclose(kernel["stats"]["values"], model_kernel)
    assert kernel["stats"]["mean"] == pytest.approx(float(model_kernel.mean()), rel=1e-5)
    assert dense["parameters"] == model_kernel.size + bias["stats"]["shape"][0]
    assert {w["name"] for w in layers["normalize"]["weights"]} >= {"mean", "variance"}
    assert not any(w["trainable"] for w in layers["normalize"]["weights"])
    assert layers["island_one_hot"]["weights"] == []


def test_weights_of_large_arrays_leave_the_values_out(
    digits: Trained, save: Save, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_INSPECT_MAX_VALUES", "50")
    get_settings.cache_clear()
    key = save(digits)

    layers = {layer["name"]: layer for layer in inspection.weights(key)}

    kernel, bias = layers["output"]["weights"]
    assert kernel["stats"]["shape"] == [144, 10] and "values" not in kernel["stats"]
    assert kernel["stats"]["std"] > 0
    assert len(bias["stats"]["values"]) == 10
