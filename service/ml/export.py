"""A trained model in formats other tools serve: a TensorFlow SavedModel (TF Serving) or ONNX.

Both hold the model's whole forward pass, its preprocessing included (Normalization, the
StringLookup one-hot of string columns, pixel Rescaling): the exported model takes raw values,
as `/v1/models/{id}/predict` does, under the model's own input names (one input of shape
[None, 1] per tabular feature, named as its `input_schema.features[].input`; one input `x` for
array data), and gives one output, `output`.

Each export loads the `.keras` file afresh rather than taking the model cached for predictions:
tracing the export's graph calls the model from this thread, and a private copy keeps that away
from the prediction threads that share the cached one. Everything is written into a fresh private
temporary folder, which is removed before the file is handed over: the caller gets an open handle
to an unlinked file, so its bytes go away when the handle is closed, however the download ends (a
client that disconnects included), and nothing is ever left on disk.
"""

import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import keras
import tensorflow as tf

from service.core import storage
from service.core.errors import Conflict
from service.ml import artifacts

log = logging.getLogger(__name__)

ExportFormat = Literal["savedmodel", "onnx"]
# TF Serving reads `<model_base_path>/<version>/saved_model.pb`: the archive holds one version.
SAVEDMODEL_VERSION = "1"
OUTPUT_NAME = "output"  # the signature's (and the ONNX graph's) one output
# tf2onnx's default, named so that a converter upgrade does not change what clients get: every
# current ONNX runtime runs it, and no operation dendrite's layers need is newer.
ONNX_OPSET = 15
# The operator domains of standard ONNX; a node in any other is an operation tf2onnx could not
# convert and copied as it was (the file would not run).
_ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


@dataclass(frozen=True)
class Exported:
    """An export: its bytes as an open handle to an already removed file (close it when done),
    their size, the name to download them as, and their media type."""

    handle: IO[bytes]
    size: int
    filename: str
    media_type: str


@dataclass(frozen=True)
class _Written:
    path: Path
    filename: str
    media_type: str


def export(storage_key: str, model_id: str, export_format: ExportFormat) -> Exported:
    """The model at `storage_key` exported as `export_format`. `Conflict` when the model cannot
    be expressed in that format."""
    folder = Path(tempfile.mkdtemp(prefix="dendrite-export-"))  # 0700, the owner's alone
    try:
        with storage.local_file(storage_key) as path:  # a temporary copy from a remote store
            model = artifacts.load(path)
        if export_format == "savedmodel":
            written = _savedmodel(model, model_id, folder)
        else:
            written = _onnx(model, model_id, folder)
        handle = written.path.open("rb")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size = os.fstat(handle.fileno()).st_size
    return Exported(handle, size, written.filename, written.media_type)


def input_signature(model: keras.Model) -> dict[str, tf.TensorSpec] | tf.TensorSpec:
    """The model's inputs as TensorSpecs named like the Keras inputs, with any batch size: a dict
    by input name for a tabular model, the one spec `x` for an array model."""
    specs = {
        tensor.name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=tensor.name)
        for tensor in model.inputs
    }
    if isinstance(model.input, dict):
        return specs
    (spec,) = specs.values()
    return spec


def serving_function(model: keras.Model) -> tuple[Any, list[Any]]:
    """The forward pass as a tf.function with one output named `output`, and the input signature
    to trace it with: a tabular model's function takes the dict of its inputs (a SavedModel
    signature and an ONNX graph show each as an input of its own, by its spec's name), an array
    model's takes `x`."""
    signature = input_signature(model)
    if isinstance(signature, dict):

        def tabular(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {OUTPUT_NAME: model(inputs, training=False)}

        return tf.function(tabular, autograph=False), [signature]

    def array(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(x, training=False)}

    return tf.function(array, autograph=False), [signature]


def _savedmodel(model: keras.Model, model_id: str, folder: Path) -> _Written:
    """A `.tar.gz` of `<model_id>/1/` (saved_model.pb, variables/, assets/): extracted, the folder
    `<model_id>` is a TF Serving model base path. The `serving_default` signature is the whole
    forward pass; StringLookup vocabularies travel inside it as lookup tables.

    Saved through a plain `tf.Module` that tracks the model rather than Keras'
    `keras.export.ExportArchive`, which writes every weight twice (under `variables` and
    `_all_variables`): an archive twice the model's size, for the same graph and the same
    numbers. With the TensorFlow backend a Keras model is a TensorFlow trackable, so its
    variables and lookup tables are saved with it."""
    function, signature = serving_function(model)
    module = tf.Module()
    module.model = model
    saved = folder / model_id / SAVEDMODEL_VERSION
    tf.saved_model.save(
        module,
        str(saved),
        signatures={"serving_default": function.get_concrete_function(*signature)},
    )
    filename = f"dendrite-{model_id}-savedmodel.tar.gz"
    target = folder / filename
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder / model_id, arcname=model_id, filter=_anonymous)
    return _Written(target, filename, "application/gzip")


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """An archive entry without the server's user and group: they mean nothing to the client."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _onnx(model: keras.Model, model_id: str, folder: Path) -> _Written:
    """The forward pass frozen (weights and preprocessing statistics as constants) and converted
    by tf2onnx. The graph is frozen here rather than by `tf2onnx.convert.from_function`, which
    lists constants the model captured (a Normalization's mean and variance) as extra graph
    inputs; frozen first, the ONNX inputs are exactly the model's own, with its input names."""
    strings = sorted(t.name for t in model.inputs if t.dtype == "string")
    if strings:
        raise Conflict(
            f"this model cannot be exported as ONNX: its string inputs ({', '.join(strings)}) "
            "are one-hot encoded inside the model by a StringLookup vocabulary table, which the "
            "ONNX converter (tf2onnx) cannot express as ONNX operations. Export it with "
            "format=savedmodel, which keeps the lookup and takes the strings as they are",
            field="format",
        )
    import onnx
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    function, signature = serving_function(model)
    concrete = function.get_concrete_function(*signature)
    frozen = convert_variables_to_constants_v2(concrete)
    input_names = [spec.name for spec in tf.nest.flatten(signature)]
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    # The placeholders come in the order of the flattened signature (a dict's sorted keys).
    renames = dict(zip(inputs, input_names, strict=True))
    renames.update(zip(outputs, [OUTPUT_NAME], strict=True))
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        name="dendrite",
        opset=ONNX_OPSET,
        input_names=inputs,
        output_names=outputs,
        tensors_to_rename=renames,
    )
    unconverted = sorted(
        {node.op_type for node in proto.graph.node if node.domain not in _ONNX_DOMAINS}
    )
    try:
        # tf2onnx also copies an operation it cannot convert into the standard domain (gelu's
        # Erfc, celu's Expm1): ONNX's checker names the first one that ONNX does not define.
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        unconverted.append(str(error).strip().splitlines()[0])
    if unconverted:
        raise Conflict(
            "this model cannot be exported as ONNX: the converter (tf2onnx) has no ONNX "
            f"equivalent for some of its operations ({'; '.join(unconverted)}). Export it with "
            "format=savedmodel",
            field="format",
        )
    filename = f"dendrite-{model_id}.onnx"
    target = folder / filename
    target.write_bytes(proto.SerializeToString())
    log.info("exported model %s as ONNX", model_id)
    return _Written(target, filename, "application/octet-stream")
