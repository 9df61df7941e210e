"""Rows to arrays: missing values, a seeded shuffle, the train/validation/test split, label indices
and normalization statistics. No TensorFlow: the worker feeds the result to Keras.

Keras' own `validation_split` takes the last rows unshuffled (on the concrete file that doubles
val_loss), so every split here is made after a shuffle seeded by the job.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from service.core.errors import InvalidInput
from service.ml.plan import Normalization, Plan

Inputs = dict[str, np.ndarray] | np.ndarray


@dataclass
class Split:
    x: Inputs
    y: np.ndarray  # regression: float32 (n, targets); classification: int label index (n,)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Prepared:
    train: Split
    validation: Split | None
    test: Split | None
    normalization: Normalization | None
    fills: dict[str, Any]  # column -> value used for missing cells (missing = "mean")


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _split_sizes(n: int, validation_split: float, test_split: float) -> tuple[int, int]:
    n_test = round(n * test_split)
    n_validation = round((n - n_test) * validation_split)
    if n_test + n_validation >= n:
        raise InvalidInput(
            f"with {n} rows, validation_split {validation_split} and test_split {test_split} "
            "leave no rows to train on; lower them or upload more rows",
            field="/training/validation_split",
        )
    return n_validation, n_test


def prepare_frame(
    plan: Plan, frame: pd.DataFrame, *, normalize: bool, missing: str, seed: int,
    validation_split: float, test_split: float,
) -> Prepared:  # fmt: skip
    columns = [feature.name for feature in plan.features] + plan.targets
    frame = frame[columns]
    # As floats, so a boolean column with gaps can take its mean (pandas' "boolean" refuses 0.6).
    numeric = [f.name for f in plan.features if f.kind == "numeric"]
    frame = frame.astype(dict.fromkeys(numeric, "float64"))
    # "mean" fills features later; a row without a target cannot be learned from either way.
    frame = frame.dropna() if missing == "drop" else frame.dropna(subset=plan.targets)
    if len(frame) < 2:
        raise InvalidInput(
            f"only {len(frame)} rows are left after handling missing values; at least 2 are needed",
            field="/preprocessing/missing",
        )
    order = np.random.default_rng(seed).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    n_validation, n_test = _split_sizes(len(frame), validation_split, test_split)
    test_rows = frame.iloc[:n_test]
    validation_rows = frame.iloc[n_test : n_test + n_validation]
    train_rows = frame.iloc[n_test + n_validation :]

    fills: dict[str, Any] = {}
    for feature in plan.features:
        column = train_rows[feature.name]
        if feature.kind == "numeric":
            fills[feature.name] = float(column.mean()) if column.notna().any() else 0.0
        else:
            modes = column.dropna().astype(str).mode()
            fills[feature.name] = str(modes.iloc[0]) if len(modes) else ""
            feature.categories = sorted(column.dropna().astype(str).unique().tolist())
    if plan.task == "classification":
        plan.labels = sorted(python_value(v) for v in frame[plan.targets[0]].unique())
        plan.output_units = len(plan.labels)

    normalization = None
    if normalize and numeric:
        values = train_rows[numeric].astype("float64").fillna(pd.Series(fills))
        normalization = Normalization(
            mean=values.mean().to_numpy(), variance=values.var(ddof=0).to_numpy()
        )

    def split(rows: pd.DataFrame) -> Split | None:
        if len(rows) == 0:
            return None
        rows = rows.fillna({name: fills[name] for name in fills})
        x = {
            f.input: (
                rows[f.name].to_numpy("float32").reshape(-1, 1)
                if f.kind == "numeric"
                else rows[f.name].astype(str).to_numpy(object).reshape(-1, 1)
            )
            for f in plan.features
        }
        return Split(x=x, y=_targets(plan, rows))

    train = split(train_rows)
    assert train is not None
    # Predictions fill missing cells only where training did.
    kept_fills = fills if missing == "mean" else {}
    return Prepared(train, split(validation_rows), split(test_rows), normalization, kept_fills)


def _targets(plan: Plan, rows: pd.DataFrame) -> np.ndarray:
    if plan.task == "classification":
        index = {label: position for position, label in enumerate(plan.labels or [])}
        return np.array([index[python_value(v)] for v in rows[plan.targets[0]]], dtype="int64")
    return np.asarray(rows[plan.targets].to_numpy("float32"))


def prepare_arrays(
    plan: Plan, arrays: dict[str, np.ndarray], *, normalize: bool, seed: int,
    validation_split: float, test_split: float,
) -> Prepared:  # fmt: skip
    x = arrays["x_train"] if "x_train" in arrays else arrays["x"]
    y = arrays["y_train"] if "y_train" in arrays else arrays["y"]
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    has_test = "x_test" in arrays and "y_test" in arrays
    n_validation, n_test = _split_sizes(len(x), validation_split, 0.0 if has_test else test_split)
    if plan.task == "classification":
        seen = [y] + ([arrays["y_test"]] if has_test else [])
        plan.labels = sorted(python_value(v) for v in np.unique(np.concatenate(seen)))
        plan.output_units = len(plan.labels)

    def targets(values: np.ndarray) -> np.ndarray:
        if plan.task == "classification":
            return np.searchsorted(np.array(plan.labels), values).astype("int64")
        return values.reshape(len(values), -1).astype("float32")

    def split(xs: np.ndarray, ys: np.ndarray) -> Split | None:
        return Split(x=xs.astype("float32"), y=targets(ys)) if len(xs) else None

    test = split(arrays["x_test"], arrays["y_test"]) if has_test else split(x[:n_test], y[:n_test])
    validation = split(x[n_test : n_test + n_validation], y[n_test : n_test + n_validation])
    train = split(x[n_test + n_validation :], y[n_test + n_validation :])
    assert train is not None
    normalization = None
    if normalize and not plan.scale_pixels:
        values = np.asarray(train.x, dtype="float64")
        normalization = Normalization(mean=np.array(values.mean()), variance=np.array(values.var()))
    return Prepared(train, validation, test, normalization, {})
