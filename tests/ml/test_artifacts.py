"""Saving and loading `.keras` files: the loaded model answers exactly as the trained one."""

import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from service.core.config import get_settings
from service.ml import artifacts
from tests.ml.conftest import Trained


def _model_path(key: str) -> Path:
    """A file in the (local) artifact store's folder, as the worker saves it."""
    path = get_settings().artifacts_path / key
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_save_writes_the_file_and_returns_its_size() -> None:
    path = _model_path("models/m.keras")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    size = artifacts.save(model, path)

    assert size == path.stat().st_size > 0
    assert zipfile.is_zipfile(path)
    assert [p.name for p in path.parent.iterdir()] == ["m.keras"]  # no temporary file left


def test_save_replaces_an_existing_file() -> None:
    path = _model_path("models/m.keras")
    artifacts.save(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), path)

    artifacts.save(keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)]), path)

    assert artifacts.load(path).predict_on_batch(np.zeros((1, 3))).shape == (1, 4)


def test_load_tabular_model_with_text_features_predicts_identically(
    penguin_mass: Trained,
) -> None:
    path = _model_path("models/mass.keras")
    artifacts.save(penguin_mass.model, path)
    x = penguin_mass.prepared.validation.x  # type: ignore[union-attr]

    loaded = artifacts.load(path)

    np.testing.assert_array_equal(
        loaded.predict_on_batch(x), penguin_mass.model.predict_on_batch(x)
    )
    assert {layer.name for layer in loaded.layers} >= {"island_one_hot", "sex_one_hot", "normalize"}
    assert loaded.get_layer("island_one_hot").get_vocabulary() == [
        "[UNK]", "Biscoe", "Dream", "Torgersen",
    ]  # fmt: skip


def test_load_array_model_predicts_identically(digits: Trained) -> None:
    path = _model_path("models/digits.keras")
    artifacts.save(digits.model, path)
    x = digits.prepared.test.x  # type: ignore[union-attr]

    loaded = artifacts.load(path)

    np.testing.assert_array_equal(loaded.predict_on_batch(x), digits.model.predict_on_batch(x))


@pytest.mark.parametrize("fixture", ["penguin_mass", "digits"])
def test_saved_model_loads_in_plain_keras_safe_mode(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    trained: Trained = request.getfixturevalue(fixture)
    path: Path = _model_path(f"models/{fixture}.keras")
    artifacts.save(trained.model, path)
    x = trained.prepared.train.x

    loaded = keras.saving.load_model(path, safe_mode=True)

    np.testing.assert_array_equal(loaded.predict_on_batch(x), trained.model.predict_on_batch(x))


def test_load_refuses_a_lambda_layer() -> None:
    path = _model_path("models/lambda.keras")
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(path)

    with pytest.raises(ValueError, match="safe_mode"):
        artifacts.load(path)
