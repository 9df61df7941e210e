"""Small trained models, made once per session from the course files, for the artifact and
inference tests; and `fit`, which trains a built model on prepared splits."""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from service.core import orm, storage
from service.formats import tabular
from service.formats.npz import describe_arrays
from service.ml import artifacts, builder, inference
from service.ml import plan as plans
from service.ml.preprocessing import Prepared, Split, prepare_arrays, prepare_frame
from service.schemas.jobs import JobCreate

DATA = Path(__file__).parents[1] / "data"


@dataclass
class Trained:
    plan: plans.Plan
    prepared: Prepared
    model: keras.Model

    def input_schema(self) -> dict[str, Any]:
        """As the worker records it on the model row."""
        features = [
            {
                "name": f.name, "input": f.input, "kind": f.kind, "categories": f.categories,
                "fill": self.prepared.fills.get(f.name),
            }
            for f in self.plan.features
        ]  # fmt: skip
        return {"kind": self.plan.data, "features": features, "shape": self.plan.sample_shape}

    def outputs(self) -> dict[str, Any]:
        return {"targets": self.plan.targets, "labels": self.plan.labels}


def fit(model: keras.Model, plan: plans.Plan, split: Split, epochs: int = 1) -> None:
    y = split.y
    if plan.task == "classification":
        y = keras.utils.to_categorical(y, num_classes=plan.output_units)
    model.fit(builder.model_inputs(split.x), y, epochs=epochs, batch_size=64, verbose=0)


def _dataset(columns: list[dict[str, Any]], file_format: str) -> orm.Dataset:
    return orm.Dataset(
        id="d1", name="data", format=file_format, size_bytes=1, sha256="0" * 64, rows=1,
        columns=columns, storage_key="datasets/d1",
    )  # fmt: skip


def _train_penguins(body: dict[str, Any]) -> Trained:
    keras.utils.set_random_seed(0)
    frame = tabular.read_table(DATA / "penguins.csv", "csv")
    request = JobCreate.model_validate({"dataset_id": "d1", **body})
    plan = plans.resolve(request, _dataset(tabular.describe(frame), "csv"))
    prepared = prepare_frame(
        plan, frame, normalize=True, missing=request.preprocessing.missing, seed=0,
        validation_split=0.2, test_split=0.0,
    )  # fmt: skip
    model = builder.build(request.network, plan, prepared.normalization)
    builder.compile_model(model, plan, request.training.optimizer)
    fit(model, plan, prepared.train, epochs=2)
    return Trained(plan, prepared, model)


@pytest.fixture(scope="session")
def penguin_mass() -> Trained:
    """Regression on two text and two numeric columns, missing values filled."""
    return _train_penguins(
        {
            "task": "regression",
            "target": "body_mass_g",
            "features": ["island", "sex", "bill_length_mm", "flipper_length_mm"],
            "preprocessing": {"missing": "mean"},
            "network": {"layers": [{"type": "dense", "units": 8}]},
            "training": {"optimizer": {"learning_rate": 0.05}},
        }
    )


@pytest.fixture(scope="session")
def penguin_species() -> Trained:
    """Classification with string labels."""
    return _train_penguins(
        {
            "task": "classification",
            "target": "species",
            "features": ["island", "bill_length_mm", "bill_depth_mm"],
            "preprocessing": {"missing": "drop"},
            "network": {"layers": [{"type": "dense", "units": 8}]},
            "training": {"optimizer": {"learning_rate": 0.05}},
        }
    )


@pytest.fixture(scope="session")
def digits() -> Trained:
    """A small convolutional MNIST classifier on 28x28 uint8 images (no channel axis)."""
    keras.utils.set_random_seed(0)
    with np.load(DATA / "mnist_small.npz") as npz:
        arrays = {"x": npz["x_train"][:600], "y": npz["y_train"][:600]}
    request = JobCreate.model_validate(
        {
            "dataset_id": "d1",
            "task": "classification",
            "target": "y",
            "network": {
                "layers": [
                    {"type": "conv2d", "filters": 4},
                    {"type": "max_pooling2d", "pool_size": 4},
                    {"type": "flatten"},
                ]
            },
        }
    )
    plan = plans.resolve(request, _dataset(describe_arrays(arrays), "npz"))
    prepared = prepare_arrays(
        plan, arrays, normalize=True, seed=0, validation_split=0.0, test_split=0.1
    )
    model = builder.build(request.network, plan, prepared.normalization)
    builder.compile_model(model, plan, request.training.optimizer)
    fit(model, plan, prepared.train)
    return Trained(plan, prepared, model)


Save = Callable[[Trained], str]


@pytest.fixture
def save() -> Iterator[Save]:
    """Saves a trained model under a new key, as the worker does; forgets the cached models
    afterwards."""
    keys: list[str] = []

    def _save(trained: Trained) -> str:
        key = f"models/{uuid.uuid4().hex}.keras"
        with storage.local_target(key) as path:
            artifacts.save(trained.model, path)
        keys.append(key)
        return key

    yield _save
    for key in keys:
        inference.evict(key)
