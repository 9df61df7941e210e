"""The Open Inference Protocol's tensors to and from dendrite's rows (`service.oip`), without a
server: both tabular layouts, array models, every refusal naming the input, the response."""

from typing import Any

import pytest

from service import oip
from service.core.errors import InvalidInput
from service.models import Served
from service.schemas.models import MAX_INSTANCES

TABLE = Served(
    "alice",
    "models/x.keras",
    {
        "kind": "tabular",
        "features": [
            {"name": "a", "input": "a", "kind": "numeric"},
            {"name": "b", "input": "b", "kind": "numeric"},
        ],
    },
    {"targets": ["y"], "labels": None},
)
TEXT = Served(
    "alice",
    "models/t.keras",
    {
        "kind": "tabular",
        "features": [
            {"name": "a", "input": "a", "kind": "numeric"},
            {"name": "island", "input": "island", "kind": "string"},
        ],
    },
    {"targets": ["species"], "labels": ["Adelie", "Gentoo"]},
)
IMAGES = Served(
    "alice",
    "models/i.keras",
    {"kind": "array", "shape": [2, 2]},
    {"targets": ["y"], "labels": [0, 1]},
)


def _tensor(name: str, shape: list[int], data: list[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_one_input_per_column_or_one_tensor_of_every_feature() -> None:
    per_column = [_tensor("a", [2, 1], [1, 2]), _tensor("b", [2], [3, 4], "INT64")]
    matrix = [_tensor("input", [2, 2], [[1, 3], [2, 4]])]  # nested data is flattened

    assert oip.instances(TABLE, per_column) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    assert oip.instances(TABLE, matrix) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    text = [_tensor("a", [1], [1.5]), _tensor("island", [1], ["Biscoe"], "BYTES")]
    assert oip.instances(TEXT, text) == [{"a": 1.5, "island": "Biscoe"}]


def test_array_models_take_x_reshaped_row_major() -> None:
    rows = oip.instances(IMAGES, [_tensor("x", [2, 2, 2], list(range(8)))])
    assert rows == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


@pytest.mark.parametrize(
    ("served", "inputs", "message"),
    [
        (TABLE, [_tensor("a", [2], [1]), _tensor("b", [2], [1, 2])], "holds 2 values, data has 1"),
        (TABLE, [_tensor("a", [1], [1]), _tensor("b", [1], ["x"], "BYTES")], "datatype BYTES"),
        (TABLE, [_tensor("a", [1], [1]), _tensor("c", [1], [1])], "'c' is not a feature"),
        (TABLE, [_tensor("a", [1], [1]), _tensor("b", [2], [1, 2])], "has 2 rows, others 1"),
        (TABLE, [_tensor("a", [1], [1], "FP99")], "unknown datatype"),
        (TABLE, [_tensor("m", [1, 3], [1, 2, 3])], "shape [n, 2]"),
        (TEXT, [_tensor("m", [1, 2], [1, 2])], "text features"),
        (TEXT, [_tensor("a", [1], [1]), _tensor("island", [1], [3])], "datatype FP32"),
        (IMAGES, [_tensor("x", [1, 3], [1, 2, 3])], "shape [-1, 2, 2]"),
        (TABLE, [], "non-empty list"),
    ],
)
def test_a_wrong_input_is_refused_naming_it(
    served: Served, inputs: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        oip.instances(served, inputs)
    assert message in refused.value.detail


def test_one_request_infers_no_more_rows_than_v1_predict() -> None:
    rows = MAX_INSTANCES + 1
    with pytest.raises(InvalidInput) as refused:
        oip.instances(TABLE, [_tensor("m", [rows, 2], [0] * (2 * rows))])
    assert "at most 100,000" in refused.value.detail


def test_response_tensors_and_the_outputs_asked_for() -> None:
    predictions = [
        {"label": "Gentoo", "probabilities": {"Adelie": 0.25, "Gentoo": 0.75}},
        {"label": "Adelie", "probabilities": {"Adelie": 0.5, "Gentoo": 0.5}},
    ]
    answer = oip.response(TEXT, "penguins", "3", predictions, None, "r1")

    assert answer["model_name"] == "penguins" and answer["model_version"] == "3"
    assert answer["id"] == "r1"
    label, probabilities = answer["outputs"]
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["Gentoo", "Adelie"],
    }
    assert probabilities["shape"] == [2, 2] and probabilities["data"] == [0.25, 0.75, 0.5, 0.5]
    only = oip.response(TEXT, "penguins", "3", predictions, [{"name": "label"}], None)
    assert [o["name"] for o in only["outputs"]] == ["label"] and "id" not in only
    with pytest.raises(InvalidInput):
        oip.response(TEXT, "penguins", "3", predictions, [{"name": "nope"}], None)
