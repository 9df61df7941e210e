"""Prediction rows become model inputs column by column when every value is plainly valid, and
exactly as the row-by-row checks would make them."""

from typing import Any

import numpy as np
import pytest

from service.core.errors import InvalidInput
from service.ml import inference

SCHEMA: dict[str, Any] = {
    "kind": "tabular",
    "features": [
        {"name": "island", "input": "island", "kind": "string", "fill": None},
        {"name": "sex", "input": "sex", "kind": "string", "fill": "male"},
        {"name": "bill length", "input": "bill_length", "kind": "numeric", "fill": None},
        {"name": "mass", "input": "mass", "kind": "numeric", "fill": 4200.5},
    ],
}


def _row(**changes: Any) -> dict[str, Any]:
    return {"island": "Dream", "sex": "female", "bill length": 39.5, "mass": 3750, **changes}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        assert a[name].tolist() == b[name].tolist()


@pytest.mark.parametrize(
    "rows",
    [
        [_row()],
        [_row(), _row(island="Biscoe", **{"bill length": 1e30, "mass": 7})],
        [_row(sex=None, mass=None), _row(extra="ignored")],
        [{"island": "Torgersen", "bill length": -0.1}],  # fills for the missing ones
        [_row(**{"bill length": 16777217}), _row(**{"bill length": 3.4e38})],
    ],
)
def test_plainly_valid_rows_take_the_fast_path_with_the_same_inputs(
    rows: list[dict[str, Any]],
) -> None:
    fast = inference.tabular_inputs_fast(SCHEMA, rows)

    assert fast is not None
    _same(fast, inference.tabular_inputs_checked(SCHEMA, rows))
    _same(inference.tabular_inputs(SCHEMA, rows), fast)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (_row(**{"bill length": True}), "/instances/1/bill length"),
        (_row(**{"bill length": "39"}), "/instances/1/bill length"),
        (_row(**{"bill length": float("nan")}), "/instances/1/bill length"),
        (_row(**{"bill length": 1e39}), "/instances/1/bill length"),
        (_row(**{"bill length": 10**400}), "/instances/1/bill length"),
        (_row(**{"bill length": None}), "/instances/1/bill length"),
        (_row(island=3), None),  # a number for a text feature is accepted as its text
        (_row(island=["Dream"]), "/instances/1/island"),
        ({"sex": "male", "bill length": 1.0}, "/instances/1/island"),
    ],
)
def test_rows_needing_a_closer_look_get_the_checked_path(
    row: dict[str, Any], field: str | None
) -> None:
    rows = [_row(), row]

    assert inference.tabular_inputs_fast(SCHEMA, rows) is None
    if field is None:
        assert inference.tabular_inputs(SCHEMA, rows)["island"].tolist() == [["Dream"], ["3"]]
        return
    with pytest.raises(InvalidInput) as raised:
        inference.tabular_inputs(SCHEMA, rows)
    assert raised.value.field == field


def test_a_row_that_is_not_an_object_gets_the_checked_path() -> None:
    assert inference.tabular_inputs_fast(SCHEMA, [_row(), [1, 2]]) is None
    with pytest.raises(InvalidInput):
        inference.tabular_inputs(SCHEMA, [_row(), [1, 2]])
