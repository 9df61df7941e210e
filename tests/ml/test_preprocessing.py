"""Rows and arrays to training splits: missing values, seeded shuffles, labels, normalization."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from service.core.errors import InvalidInput
from service.ml.plan import Feature, Plan
from service.ml.preprocessing import Prepared, prepare_arrays, prepare_frame

DATA = Path(__file__).parents[1] / "data"


def _plan(
    features: dict[str, str], targets: list[str], task: str = "regression", **extra: Any
) -> Plan:
    return Plan(
        task=task,  # type: ignore[arg-type]
        data="tabular",
        features=[
            Feature(name=name, input=name.lower().replace(" ", "_"), kind=kind)  # type: ignore[arg-type]
            for name, kind in features.items()
        ],
        targets=targets,
        output_units=len(targets),
        output_activation="linear" if task == "regression" else "softmax",
        loss="mean_squared_error" if task == "regression" else "categorical_crossentropy",
        metrics=[],
        epochs=1,
        **extra,
    )


def _prepare(plan: Plan, frame: pd.DataFrame, **options: Any) -> Prepared:
    settings: dict[str, Any] = {
        "normalize": True, "missing": "error", "seed": 1, "validation_split": 0.0,
        "test_split": 0.0,
    }  # fmt: skip
    return prepare_frame(plan, frame, **(settings | options))


def _numbered(rows: int) -> pd.DataFrame:
    """Row i holds x = i and y = 2i, so a split's rows can be told apart by x."""
    return pd.DataFrame({"x": np.arange(rows, dtype="float64"), "y": 2.0 * np.arange(rows)})


def _xs(x: Any, name: str = "x") -> list[float]:
    return x[name].ravel().tolist()  # type: ignore[no-any-return]


def test_prepare_frame_same_seed_gives_identical_splits() -> None:
    options = {"seed": 7, "validation_split": 0.3, "test_split": 0.2}

    first = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(50), **options)
    second = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(50), **options)

    for one, other in [
        (first.train, second.train), (first.validation, second.validation),
        (first.test, second.test),
    ]:  # fmt: skip
        assert one is not None and other is not None
        np.testing.assert_array_equal(one.x["x"], other.x["x"])
        np.testing.assert_array_equal(one.y, other.y)


def test_prepare_frame_different_seed_gives_different_splits() -> None:
    first = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(50), seed=1, validation_split=0.3)
    second = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(50), seed=2, validation_split=0.3)

    assert first.validation is not None and second.validation is not None
    assert set(_xs(first.validation.x)) != set(_xs(second.validation.x))


def test_prepare_frame_validation_rows_are_a_shuffled_sample() -> None:
    prepared = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(100), validation_split=0.3)

    assert prepared.validation is not None
    validation, train = _xs(prepared.validation.x), _xs(prepared.train.x)
    assert len(validation) == 30
    assert len(train) == 70
    assert sorted(validation + train) == list(range(100))
    # Unshuffled, they would be one block of 30 consecutive rows (Keras' own: rows 70..99).
    assert max(validation) - min(validation) > 29


def test_prepare_frame_keeps_features_and_targets_of_a_row_together() -> None:
    prepared = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(40), validation_split=0.25)

    assert prepared.validation is not None
    for split in (prepared.train, prepared.validation):
        np.testing.assert_array_equal(split.y[:, 0], 2 * split.x["x"][:, 0])


def test_prepare_frame_splits_test_rows_first_then_validation() -> None:
    prepared = _prepare(
        _plan({"x": "numeric"}, ["y"]), _numbered(100), validation_split=0.25, test_split=0.2
    )

    assert prepared.test is not None and prepared.validation is not None
    assert (len(prepared.test), len(prepared.validation), len(prepared.train)) == (20, 20, 60)
    all_rows = _xs(prepared.test.x) + _xs(prepared.validation.x) + _xs(prepared.train.x)
    assert sorted(all_rows) == list(range(100))


def test_prepare_frame_without_splits_has_no_validation_or_test() -> None:
    prepared = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(10))

    assert prepared.validation is None
    assert prepared.test is None
    assert len(prepared.train) == 10


def test_prepare_frame_rejects_splits_that_leave_no_training_rows() -> None:
    plan = _plan({"x": "numeric"}, ["y"])

    with pytest.raises(
        InvalidInput, match=r"with 2 rows, validation_split 0\.6 and test_split 0\.3 leave no rows"
    ) as caught:
        _prepare(plan, _numbered(2), validation_split=0.6, test_split=0.3)

    assert caught.value.field == "/training/validation_split"


def test_prepare_frame_gives_regression_targets_as_float32_columns() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "a": [1, 2, 3], "b": [10.0, 20.0, 30.0]})

    prepared = _prepare(_plan({"x": "numeric"}, ["a", "b"]), frame)

    assert prepared.train.y.dtype == np.float32
    assert prepared.train.y.shape == (3, 2)
    np.testing.assert_array_equal(prepared.train.y[:, 1], 10 * prepared.train.y[:, 0])


def test_prepare_frame_drop_removes_rows_with_missing_values() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
            "color": ["red", "blue", None, "red", "blue", "red"],
            "y": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0],
        }
    )
    plan = _plan({"x": "numeric", "color": "string"}, ["y"])

    prepared = _prepare(plan, frame, missing="drop")

    assert sorted(_xs(prepared.train.x)) == [1.0, 5.0, 6.0]
    assert prepared.fills == {}  # predictions do not fill what training dropped


def test_prepare_frame_mean_fills_with_the_train_split_mean() -> None:
    x = [np.nan if i % 5 == 0 else float(i) for i in range(40)]
    frame = pd.DataFrame({"x": x, "row": np.arange(40.0), "y": np.arange(40.0)})
    plan = _plan({"x": "numeric", "row": "numeric"}, ["y"])

    prepared = _prepare(plan, frame, missing="mean", validation_split=0.5)

    assert prepared.validation is not None
    train_rows = prepared.train.x["row"].ravel().astype(int)
    expected = np.nanmean(np.array(x)[train_rows])
    assert expected != pytest.approx(np.nanmean(x))  # the split matters in this data
    assert prepared.fills["x"] == pytest.approx(expected)
    for split in (prepared.train, prepared.validation):
        rows = split.x["row"].ravel().astype(int)
        filled = split.x["x"].ravel()[rows % 5 == 0]
        assert len(filled) > 0
        np.testing.assert_allclose(filled, expected, rtol=1e-6)
        assert not np.isnan(split.x["x"]).any()


def test_prepare_frame_mean_fills_text_with_the_most_frequent_value() -> None:
    frame = pd.DataFrame(
        {"color": ["red", "blue", None, "red", "green"], "y": [1.0, 2.0, 3.0, 4.0, 5.0]}
    )

    prepared = _prepare(_plan({"color": "string"}, ["y"]), frame, missing="mean")

    assert prepared.fills == {"color": "red"}
    filled = prepared.train.x["color"].ravel()[prepared.train.y.ravel() == 3.0]
    assert filled.tolist() == ["red"]


def test_prepare_frame_mean_fills_boolean_column_with_gaps() -> None:
    frame = pd.DataFrame(
        {
            "flag": pd.array([True, False, None, True, True], dtype="boolean"),
            "y": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )

    prepared = _prepare(_plan({"flag": "numeric"}, ["y"]), frame, missing="mean")

    assert prepared.fills == {"flag": 0.75}
    by_target = dict(zip(prepared.train.y.ravel(), prepared.train.x["flag"].ravel(), strict=True))
    assert by_target == {1.0: 1.0, 2.0: 0.0, 3.0: 0.75, 4.0: 1.0, 5.0: 1.0}


def test_prepare_frame_mean_drops_rows_without_a_target() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "y": [1.0, np.nan, 3.0, 4.0]})

    prepared = _prepare(_plan({"x": "numeric"}, ["y"]), frame, missing="mean")

    assert sorted(prepared.train.y.ravel().tolist()) == [1.0, 3.0, 4.0]


def test_prepare_frame_rejects_too_few_rows_after_dropping() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, np.nan], "y": [1.0, 2.0, 3.0]})

    with pytest.raises(InvalidInput, match="only 1 rows are left") as caught:
        _prepare(_plan({"x": "numeric"}, ["y"]), frame, missing="drop")

    assert caught.value.field == "/preprocessing/missing"


def test_prepare_frame_keeps_penguin_species_as_sorted_strings() -> None:
    frame = pd.read_csv(DATA / "penguins.csv")
    frame["row"] = np.arange(len(frame), dtype="float64")
    plan = _plan(
        {"island": "string", "bill_length_mm": "numeric", "sex": "string", "row": "numeric"},
        ["species"],
        task="classification",
    )

    prepared = _prepare(plan, frame, missing="drop", validation_split=0.2)

    assert plan.labels == ["Adelie", "Chinstrap", "Gentoo"]
    assert all(type(label) is str for label in plan.labels)
    assert plan.output_units == 3
    assert prepared.train.y.dtype == np.int64
    rows = prepared.train.x["row"].ravel().astype(int)
    species = [plan.labels[label] for label in prepared.train.y]
    assert species == frame["species"].to_numpy()[rows].tolist()


def test_prepare_frame_keeps_integer_labels_as_ints() -> None:
    frame = pd.DataFrame({"x": np.arange(9.0), "grade": [3, 1, 2] * 3})
    plan = _plan({"x": "numeric"}, ["grade"], task="classification")

    prepared = _prepare(plan, frame)

    assert plan.labels == [1, 2, 3]
    assert all(type(label) is int for label in plan.labels)
    grades = {0: 3, 1: 1, 2: 2}  # by x % 3
    for x, label in zip(prepared.train.x["x"].ravel(), prepared.train.y, strict=True):
        assert plan.labels[label] == grades[int(x) % 3]


def test_prepare_frame_lists_string_categories_seen_in_training() -> None:
    frame = pd.DataFrame({"color": ["red", "blue", "green", "blue"] * 5, "y": np.arange(20.0)})
    plan = _plan({"color": "string"}, ["y"])

    prepared = _prepare(plan, frame, validation_split=0.2)

    assert plan.features[0].categories == ["blue", "green", "red"]
    assert prepared.train.x["color"].dtype == object
    assert prepared.train.x["color"].shape == (16, 1)
    assert prepared.normalization is None  # nothing numeric to normalize


def test_prepare_frame_normalization_equals_numpy_on_train_rows() -> None:
    frame = pd.read_csv(DATA / "concrete_data.csv")
    features = [name for name in frame.columns if name != "Strength"]
    plan = _plan(dict.fromkeys(features, "numeric"), ["Strength"])

    prepared = _prepare(plan, frame, validation_split=0.3, test_split=0.1)

    assert prepared.normalization is not None
    train = np.hstack([prepared.train.x[f.input] for f in plan.features]).astype("float64")
    assert len(train) == 1030 - 103 - 278  # test rows first, then 30% of the rest
    np.testing.assert_allclose(prepared.normalization.mean, train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(prepared.normalization.variance, train.var(axis=0), rtol=1e-5)
    assert not np.allclose(prepared.normalization.mean, frame[features].mean().to_numpy())


def test_prepare_frame_without_normalize_has_no_statistics() -> None:
    prepared = _prepare(_plan({"x": "numeric"}, ["y"]), _numbered(10), normalize=False)

    assert prepared.normalization is None


def _arrays(rows: int = 60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(5.0, 2.0, size=(rows, 3, 2)), "y": np.arange(rows) % 4}


def _array_plan(task: str = "classification", scale_pixels: bool = False) -> Plan:
    return Plan(
        task=task, data="array", features=[Feature("x", "x", "numeric")], targets=["y"],  # type: ignore[arg-type]
        output_units=1, output_activation="softmax", loss="categorical_crossentropy",
        metrics=[], epochs=1, scale_pixels=scale_pixels,
    )  # fmt: skip


def _prepare_arrays(plan: Plan, arrays: dict[str, np.ndarray], **options: Any) -> Prepared:
    settings: dict[str, Any] = {
        "normalize": True, "seed": 1, "validation_split": 0.0, "test_split": 0.0,
    }  # fmt: skip
    return prepare_arrays(plan, arrays, **(settings | options))


def test_prepare_arrays_keeps_mnist_labels_as_ints_and_uses_its_test_arrays() -> None:
    with np.load(DATA / "mnist_small.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    plan = _array_plan(scale_pixels=True)

    prepared = _prepare_arrays(plan, arrays, validation_split=0.2, test_split=0.5)

    assert plan.labels == list(range(10))
    assert all(type(label) is int for label in plan.labels)
    assert plan.output_units == 10
    assert prepared.test is not None and prepared.validation is not None
    assert (len(prepared.train), len(prepared.validation), len(prepared.test)) == (2400, 600, 1000)
    np.testing.assert_array_equal(prepared.test.x, arrays["x_test"])  # the file's own test rows
    np.testing.assert_array_equal(prepared.test.y, arrays["y_test"])
    assert isinstance(prepared.train.x, np.ndarray)
    assert prepared.train.x.dtype == np.float32
    assert prepared.train.x.max() == 255.0  # scaled inside the model, not here
    assert prepared.normalization is None


def test_prepare_arrays_maps_string_labels_to_sorted_indices() -> None:
    arrays = {"x": np.arange(12.0).reshape(6, 2), "y": np.array(["b", "c", "a"] * 2)}
    plan = _array_plan()

    prepared = _prepare_arrays(plan, arrays)

    assert plan.labels == ["a", "b", "c"]
    assert isinstance(prepared.train.x, np.ndarray)
    by_first_value = {0.0: "b", 2.0: "c", 4.0: "a"}
    for row, label in zip(prepared.train.x, prepared.train.y, strict=True):
        assert plan.labels[label] == by_first_value[row[0] % 6]


def test_prepare_arrays_same_seed_gives_identical_splits() -> None:
    first = _prepare_arrays(_array_plan(), _arrays(), seed=3, validation_split=0.3)
    second = _prepare_arrays(_array_plan(), _arrays(), seed=3, validation_split=0.3)

    assert first.validation is not None and second.validation is not None
    np.testing.assert_array_equal(first.validation.x, second.validation.x)
    np.testing.assert_array_equal(first.train.y, second.train.y)


def test_prepare_arrays_different_seed_gives_different_splits() -> None:
    first = _prepare_arrays(_array_plan(), _arrays(), seed=3, validation_split=0.3)
    second = _prepare_arrays(_array_plan(), _arrays(), seed=4, validation_split=0.3)

    assert first.validation is not None and second.validation is not None
    assert not np.array_equal(np.asarray(first.validation.x), np.asarray(second.validation.x))


def test_prepare_arrays_validation_rows_are_a_shuffled_sample() -> None:
    arrays = {"x": np.arange(100.0).reshape(100, 1), "y": np.arange(100.0)}

    prepared = _prepare_arrays(_array_plan("regression"), arrays, validation_split=0.3)

    assert prepared.validation is not None
    validation = prepared.validation.x.ravel().tolist()  # type: ignore[union-attr]
    assert len(validation) == 30
    assert max(validation) - min(validation) > 29
    np.testing.assert_array_equal(prepared.validation.y.ravel(), prepared.validation.x.ravel())  # type: ignore[union-attr]


def test_prepare_arrays_rejects_splits_that_leave_no_training_rows() -> None:
    arrays = {"x": np.ones((2, 3)), "y": np.array([0, 1])}

    with pytest.raises(InvalidInput, match="leave no rows to train on"):
        _prepare_arrays(_array_plan(), arrays, validation_split=0.8)


def test_prepare_arrays_normalization_equals_numpy_on_train_rows() -> None:
    prepared = _prepare_arrays(_array_plan(), _arrays(), validation_split=0.5)

    assert prepared.normalization is not None
    train = np.asarray(prepared.train.x, dtype="float64")
    assert prepared.normalization.mean == pytest.approx(train.mean())
    assert prepared.normalization.variance == pytest.approx(train.var())


def test_prepare_arrays_regression_targets_are_float32_columns() -> None:
    arrays = {"x": np.ones((5, 2)), "y": np.arange(10).reshape(5, 2)}

    prepared = _prepare_arrays(_array_plan("regression"), arrays)

    assert prepared.train.y.dtype == np.float32
    assert prepared.train.y.shape == (5, 2)
