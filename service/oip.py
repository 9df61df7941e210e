"""The Open Inference Protocol (KServe v2, REST) on dendrite's registered models.

A v2 model name is a registered model's name (`service.registry`): without a version it is the
version its `production` alias points at, else its latest; `/versions/n` is version n.

Tensors, for clients:
- A tabular model has one input per feature column, named as the column: `FP32` (any numeric
  datatype is accepted) for numeric columns, `BYTES` for text ones, shape `[-1, 1]` (`[n]` is
  accepted too). A model whose features are all numeric also takes one `FP32` tensor of shape
  `[n, features]` holding every feature in the metadata's order, under any name.
- An array model (NPZ) has one input `x` of shape `[-1, *sample shape]`.
- Regression answers one `FP32` output per target, shape `[n]`; classification answers `label`
  (`BYTES`, or `INT64` when every label is an integer), shape `[n]`, and `probabilities`
  (`FP32`, shape `[n, classes]`, in the order of the metadata's `parameters.labels`).

Rows go through the same checks and the same compiled forward pass as `/v1/.../predict`.
"""

import math
from typing import Any

from sqlalchemy.orm import Session

from service import models, registry
from service.core.db import session_scope
from service.core.errors import InvalidInput, NotFound
from service.core.orm import ModelAlias, ModelVersion
from service.core.recent import Recent
from service.keys import Principal
from service.schemas.models import MAX_INSTANCES

DEFAULT_ALIAS = "production"
NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
DATATYPES = NUMERIC | {"BYTES"}

# (owner, name) -> the version a versionless request serves; alias moves and new versions made in
# this process clear it.
_defaults: Recent[tuple[str, str], int] = Recent(maxsize=1024)
registry.watch(_defaults.clear)


def version_of(session: Session, principal: Principal, name: str, version: str | None) -> int:
    """The version a v2 request for `name` (and `version`, if the path has one) is for."""
    registered = registry.get(session, principal, name)
    if version is not None:
        if not version.isdigit():
            raise InvalidInput(f"model version '{version}' is not a number", field="version")
        return registry.version(session, principal, name, int(version)).version
    alias = session.get(ModelAlias, (registered.id, DEFAULT_ALIAS))
    if alias is not None:
        return alias.version.version
    if not registered.versions:
        raise NotFound(f"registered model '{name}' has no versions yet", field="name")
    return registered.versions[-1].version


def cached_version(principal: Principal, name: str, version: str | None) -> int:
    """`version_of`, without the database for a name resolved a moment ago: other API processes
    see a moved `production` alias or a new latest version within `service.core.recent`'s
    window, this one at once."""
    if version is not None:
        if not version.isdigit():
            raise InvalidInput(f"model version '{version}' is not a number", field="version")
        return int(version)
    key = (principal.owner, name)
    found = _defaults.get(key)
    if found is None:
        with session_scope() as session:
            found = version_of(session, principal, name, None)
        _defaults.put(key, found)
    return found


def metadata(session: Session, principal: Principal, name: str, number: int) -> dict[str, Any]:
    """The protocol's model metadata: versions, platform, input and output tensors."""
    registered = registry.get(session, principal, name)
    version: ModelVersion = registry.version(session, principal, name, number)
    model = version.model
    served = models.Served(model.owner, model.storage_key, model.input_schema, model.outputs)
    return {
        "name": name,
        "versions": [str(v.version) for v in registered.versions],
        "platform": "tensorflow_keras",
        "inputs": _inputs(served),
        "outputs": _outputs(served),
        "parameters": {
            "version": str(version.version),
            "model_id": model.id,
            "task": model.task,
            "labels": model.outputs.get("labels"),
        },
    }


def _inputs(served: models.Served) -> list[dict[str, Any]]:
    schema = served.input_schema
    if schema["kind"] == "array":
        return [{"name": "x", "datatype": "FP32", "shape": [-1, *schema["shape"]]}]
    return [
        {
            "name": feature["name"],
            "datatype": "BYTES" if feature["kind"] == "string" else "FP32",
            "shape": [-1, 1],
        }
        for feature in schema["features"]
    ]


def _label_type(labels: list[Any]) -> str:
    return "INT64" if all(isinstance(label, int) for label in labels) else "BYTES"


def _outputs(served: models.Served) -> list[dict[str, Any]]:
    labels = served.outputs.get("labels")
    if labels is not None:
        return [
            {"name": "label", "datatype": _label_type(labels), "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(labels)]},
        ]
    return [{"name": t, "datatype": "FP32", "shape": [-1]} for t in served.outputs["targets"]]


def _flat(tensor: dict[str, Any]) -> tuple[str, list[int], list[Any]]:
    """An input tensor's name, shape and row-major data, checked against each other."""
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidInput("every input needs a name")
    shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape must be a list of non-negative integers")
    if datatype not in DATATYPES:
        raise InvalidInput(f"input '{name}': unknown datatype {datatype!r}")
    if not isinstance(data, list):
        raise InvalidInput(f"input '{name}': data must be a list")
    while any(isinstance(value, list) for value in data):  # nested data: flatten row-major
        data = [item for value in data for item in (value if isinstance(value, list) else [value])]
    if math.prod(shape) != len(data):
        raise InvalidInput(
            f"input '{name}': shape {shape} holds {math.prod(shape)} values, data has {len(data)}"
        )
    if datatype == "BYTES":
        if not all(isinstance(value, str) for value in data):
            raise InvalidInput(f"input '{name}': BYTES data must be strings")
    elif not all(isinstance(value, int | float) for value in data):
        raise InvalidInput(f"input '{name}': {datatype} data must be numbers")
    return name, shape, data


def instances(served: models.Served, inputs: Any) -> list[Any]:
    """The request's input tensors as `/v1` instances (one per row)."""
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("`inputs` must be a non-empty list of tensors")
    tensors = {}
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise InvalidInput("every input must be an object {name, shape, datatype, data}")
        name, shape, data = _flat(tensor)
        tensors[name] = (shape, data, tensor["datatype"])
    schema = served.input_schema
    rows = _array_rows(schema, tensors) if schema["kind"] == "array" else None
    if rows is None:
        rows = _table_rows(schema["features"], tensors)
    if len(rows) > MAX_INSTANCES:
        raise InvalidInput(
            f"the inputs hold {len(rows):,} rows; one request infers at most {MAX_INSTANCES:,} "
            "(as /v1/.../predict): split them into several requests"
        )
    return rows


def _array_rows(schema: dict[str, Any], tensors: dict[str, Any]) -> list[Any]:
    if len(tensors) != 1:
        raise InvalidInput(f"this model takes one input 'x', not {len(tensors)}")
    ((name, (shape, data, datatype)),) = tensors.items()
    if datatype == "BYTES" or shape[1:] != schema["shape"]:
        raise InvalidInput(
            f"input '{name}': this model takes a numeric tensor of shape "
            f"[-1, {', '.join(str(d) for d in schema['shape'])}], not {datatype} {shape}"
        )
    size = math.prod(schema["shape"])
    rows = [data[i * size : (i + 1) * size] for i in range(shape[0] if shape else 0)]
    return [_nest(row, schema["shape"]) for row in rows]


def _nest(values: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return values
    step = math.prod(shape[1:])
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _table_rows(features: list[dict[str, Any]], tensors: dict[str, Any]) -> list[Any]:
    names = [f["name"] for f in features]
    if len(tensors) == 1 and next(iter(tensors)) not in names:  # one tensor of every feature
        ((name, (shape, data, datatype)),) = tensors.items()
        if any(f["kind"] == "string" for f in features):
            raise InvalidInput(
                f"input '{name}': this model has text features; send one input per column "
                f"({', '.join(names)})"
            )
        if datatype == "BYTES" or len(shape) != 2 or shape[1] != len(names):
            raise InvalidInput(
                f"input '{name}': one tensor of every feature must be numeric with shape "
                f"[n, {len(names)}] (columns {', '.join(names)}), not {datatype} {shape}"
            )
        width = len(names)
        return [
            dict(zip(names, data[i * width : (i + 1) * width], strict=True))
            for i in range(shape[0])
        ]
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise InvalidInput(
            f"input '{unknown[0]}' is not a feature of this model ({', '.join(names)})"
        )
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InvalidInput(f"input '{missing[0]}' is missing: send one input per feature")
    rows: list[dict[str, Any]] | None = None
    for feature in features:
        shape, data, datatype = tensors[feature["name"]]
        if shape not in ([len(data)], [len(data), 1]):
            raise InvalidInput(
                f"input '{feature['name']}': shape must be [n] or [n, 1], not {shape}"
            )
        if (feature["kind"] == "string") != (datatype == "BYTES"):
            wanted = "BYTES" if feature["kind"] == "string" else "a numeric datatype"
            raise InvalidInput(f"input '{feature['name']}': datatype {datatype}; it takes {wanted}")
        if rows is None:
            rows = [{} for _ in data]
        elif len(rows) != len(data):
            raise InvalidInput(
                f"input '{feature['name']}' has {len(data)} rows, others {len(rows)}"
            )
        for row, value in zip(rows, data, strict=True):
            row[feature["name"]] = value
    return rows or []


def response(
    served: models.Served,
    name: str,
    version: str,
    predictions: list[Any],
    requested: Any,
    request_id: Any,
) -> dict[str, Any]:
    """The protocol's inference response from `/v1` predictions."""
    rows = len(predictions)
    labels = served.outputs.get("labels")
    outputs: list[dict[str, Any]]
    if labels is not None:
        outputs = [
            {
                "name": "label",
                "datatype": _label_type(labels),
                "shape": [rows],
                "data": [
                    p["label"] if _label_type(labels) == "INT64" else str(p["label"])
                    for p in predictions
                ],
            },
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [rows, len(labels)],
                "data": [p["probabilities"][str(label)] for p in predictions for label in labels],
            },
        ]
    else:
        outputs = [
            {
                "name": str(t),
                "datatype": "FP32",
                "shape": [rows],
                "data": [p[t] for p in predictions],
            }
            for t in served.outputs["targets"]
        ]
    if requested:
        if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
            raise InvalidInput("`outputs` must be a list of {name}")
        wanted = [o.get("name") for o in requested]
        known = {str(o["name"]) for o in outputs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InvalidInput(f"output '{unknown[0]}' is not one of {', '.join(sorted(known))}")
        outputs = [o for o in outputs if o["name"] in wanted]
    answer: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        answer["id"] = request_id
    return answer
