"""Predictions from raw records and arrays: the model's numbers, bad rows named, the cache."""

import math
from typing import Any

import numpy as np
import pytest

from service.core import storage
from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.ml import inference
from tests.ml.conftest import Save, Trained

PENGUIN = {"island": "Dream", "sex": "female", "bill_length_mm": 39.5, "flipper_length_mm": 186}


def _predict(key: str, trained: Trained, instances: list[Any]) -> list[Any]:
    return inference.predict(key, trained.input_schema(), trained.outputs(), instances)


def test_predict_records_give_the_model_numbers(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)
    records = [
        PENGUIN,
        {"island": "Biscoe", "sex": "male", "bill_length_mm": 50, "flipper_length_mm": 230.5},
    ]
    prepared_inputs = {
        "island": np.array([["Dream"], ["Biscoe"]], dtype=object),
        "sex": np.array([["female"], ["male"]], dtype=object),
        "bill_length_mm": np.array([[39.5], [50.0]], "float32"),
        "flipper_length_mm": np.array([[186.0], [230.5]], "float32"),
    }

    predictions = _predict(key, penguin_mass, records)

    expected = penguin_mass.model.predict_on_batch(prepared_inputs)
    assert [p["body_mass_g"] for p in predictions] == expected[:, 0].tolist()
    assert predictions[0] != predictions[1]


def test_predict_records_match_training_rows(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)
    validation = penguin_mass.prepared.validation
    assert validation is not None and isinstance(validation.x, dict)
    names = {f.input: f.name for f in penguin_mass.plan.features}
    records = [
        {
            names[k]: v[i, 0].item() if v.dtype != object else v[i, 0]
            for k, v in validation.x.items()
        }
        for i in range(5)
    ]

    predictions = _predict(key, penguin_mass, records)

    rows = {k: v[:5] for k, v in validation.x.items()}
    expected = penguin_mass.model.predict_on_batch(rows)[:, 0]
    np.testing.assert_array_equal([p["body_mass_g"] for p in predictions], expected)


def test_predict_ignores_fields_the_model_does_not_use(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)

    with_extra = _predict(key, penguin_mass, [PENGUIN | {"species": "Adelie", "year": 2007}])

    assert with_extra == _predict(key, penguin_mass, [PENGUIN])


def test_predict_rejects_missing_feature_naming_row_and_feature(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)
    complete = {"island": "Dream", "bill_length_mm": 39.5, "bill_depth_mm": 18.0}
    records = [complete, {"island": "Dream", "bill_length_mm": 40.1}]

    with pytest.raises(InvalidInput, match="instance 1 lacks feature 'bill_depth_mm'") as caught:
        _predict(key, penguin_species, records)

    assert caught.value.field == "/instances/1/bill_depth_mm"
    assert caught.value.status_code == 422


def test_predict_rejects_null_when_trained_without_filling(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)
    record = {"island": None, "bill_length_mm": 39.5, "bill_depth_mm": 18.0}

    with pytest.raises(InvalidInput, match="trained without filling missing values") as caught:
        _predict(key, penguin_species, [record])

    assert caught.value.field == "/instances/0/island"


def test_predict_fills_missing_values_as_training_did(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)
    fills = penguin_mass.prepared.fills
    without = {"island": "Dream", "sex": None, "bill_length_mm": 39.5}  # no flipper length

    predictions = _predict(key, penguin_mass, [without])

    filled = without | {"sex": fills["sex"], "flipper_length_mm": fills["flipper_length_mm"]}
    assert predictions == _predict(key, penguin_mass, [filled])
    assert predictions != _predict(key, penguin_mass, [filled | {"flipper_length_mm": 230}])


def test_predict_rejects_text_for_a_numeric_feature(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)

    with pytest.raises(InvalidInput, match=r"must be a number, not str '39\.5'") as caught:
        _predict(key, penguin_mass, [PENGUIN, PENGUIN | {"bill_length_mm": "39.5"}])

    assert caught.value.field == "/instances/1/bill_length_mm"


def test_predict_rejects_boolean_for_a_numeric_feature(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)

    with pytest.raises(InvalidInput, match="must be a number") as caught:
        _predict(key, penguin_mass, [PENGUIN | {"flipper_length_mm": True}])

    assert caught.value.field == "/instances/0/flipper_length_mm"


@pytest.mark.parametrize("value", [math.nan, -math.inf, 1e39, 10**400])
def test_predict_rejects_non_finite_number(penguin_mass: Trained, save: Save, value: float) -> None:
    key = save(penguin_mass)

    with pytest.raises(InvalidInput, match="finite") as caught:
        _predict(key, penguin_mass, [PENGUIN | {"bill_length_mm": value}])

    assert caught.value.field == "/instances/0/bill_length_mm"


def test_predict_rejects_a_list_for_a_text_feature(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)

    with pytest.raises(InvalidInput, match="must be a string, not list") as caught:
        _predict(key, penguin_mass, [PENGUIN | {"island": ["Dream"]}])

    assert caught.value.field == "/instances/0/island"


def test_predict_rejects_an_array_row_for_a_tabular_model(
    penguin_mass: Trained, save: Save
) -> None:
    key = save(penguin_mass)

    with pytest.raises(InvalidInput, match="must be an object of feature values") as caught:
        _predict(key, penguin_mass, [PENGUIN, [1.0, 2.0]])

    assert caught.value.field == "/instances/1"


def test_predict_answers_an_unseen_category(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)

    [prediction] = _predict(key, penguin_mass, [PENGUIN | {"island": "Atlantis"}])

    assert math.isfinite(prediction["body_mass_g"])


def test_predict_classification_returns_original_labels_and_probabilities(
    penguin_species: Trained, save: Save
) -> None:
    key = save(penguin_species)
    records = [
        {"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7},
        {"island": "Biscoe", "bill_length_mm": 46.1, "bill_depth_mm": 13.2},
    ]

    predictions = _predict(key, penguin_species, records)

    expected = penguin_species.model.predict_on_batch(
        {
            "island": np.array([["Torgersen"], ["Biscoe"]], dtype=object),
            "bill_length_mm": np.array([[39.1], [46.1]], "float32"),
            "bill_depth_mm": np.array([[18.7], [13.2]], "float32"),
        }
    )
    labels = ["Adelie", "Chinstrap", "Gentoo"]
    for prediction, row in zip(predictions, expected, strict=True):
        assert set(prediction) == {"label", "probabilities"}
        assert list(prediction["probabilities"]) == labels
        assert list(prediction["probabilities"].values()) == row.tolist()
        assert prediction["label"] == labels[int(np.argmax(row))]
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, rel=1e-5)


def test_predict_arrays_give_the_model_numbers_with_integer_labels(
    digits: Trained, save: Save
) -> None:
    key = save(digits)
    test = digits.prepared.test
    assert test is not None
    images = np.asarray(test.x)[:3]

    predictions = _predict(key, digits, images.astype(int).tolist())

    expected = digits.model.predict_on_batch(images)
    assert [p["label"] for p in predictions] == np.argmax(expected, axis=1).tolist()
    assert all(type(p["label"]) is int for p in predictions)
    assert list(predictions[0]["probabilities"]) == [str(digit) for digit in range(10)]
    np.testing.assert_array_equal(
        [list(p["probabilities"].values()) for p in predictions], expected
    )


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([[[0.0] * 28] * 27], r"each instance must have shape \[28, 28\]; got \[27, 28\]"),
        ([[0.0] * 784], r"got \[784\]"),
        ([[[0.0] * 28] * 28, [[0.0] * 28] * 27], "numeric arrays of shape"),
        ([{"x": 1}], "numeric arrays of shape"),
        ([[["a"] * 28] * 28], "numeric arrays of shape"),
    ],
    ids=["short-image", "flat-row", "ragged", "record", "text"],
)
def test_predict_rejects_array_of_wrong_shape(
    digits: Trained, save: Save, instances: list[Any], message: str
) -> None:
    key = save(digits)

    with pytest.raises(InvalidInput, match=message) as caught:
        _predict(key, digits, instances)

    assert caught.value.field == "/instances"


def test_predict_rejects_nan_in_arrays(digits: Trained, save: Save) -> None:
    key = save(digits)
    image = np.zeros((28, 28))
    image[3, 4] = np.nan

    with pytest.raises(InvalidInput, match="NaN or infinite"):
        _predict(key, digits, [image.tolist()])


def test_predict_keeps_a_loaded_model_in_the_cache(penguin_mass: Trained, save: Save) -> None:
    key = save(penguin_mass)
    first = _predict(key, penguin_mass, [PENGUIN])
    storage.delete(key)

    assert _predict(key, penguin_mass, [PENGUIN]) == first  # answered from memory

    inference.evict(key)
    with pytest.raises(FileNotFoundError, match="not in the store"):
        _predict(key, penguin_mass, [PENGUIN])


def test_predict_drops_the_least_recently_used_model(
    penguin_mass: Trained, save: Save, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_PREDICTION_CACHE_SIZE", "2")
    get_settings.cache_clear()
    monkeypatch.setattr(inference, "_cache", None)  # sized from the settings on first use
    first, second, third = save(penguin_mass), save(penguin_mass), save(penguin_mass)
    for key in (first, second, first, third):  # `second` is now the least recently used
        _predict(key, penguin_mass, [PENGUIN])
    storage.delete(first)
    storage.delete(second)

    _predict(first, penguin_mass, [PENGUIN])
    with pytest.raises(FileNotFoundError, match="not in the store"):
        _predict(second, penguin_mass, [PENGUIN])


def test_one_compiled_forward_pass_serves_every_batch_size(
    penguin_mass: Trained, save: Save
) -> None:
    key = save(penguin_mass)
    for rows in (1, 3, 7, 1):
        predictions = _predict(key, penguin_mass, [PENGUIN] * rows)
        assert len(predictions) == rows and len({p["body_mass_g"] for p in predictions}) == 1

    assert len(inference.served(key).functions) == 1
