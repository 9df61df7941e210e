"""Trained models exported for other servers: a TensorFlow SavedModel or an ONNX file."""

from collections.abc import Iterator
from functools import lru_cache
from typing import IO, Annotated, Literal

import anyio
from fastapi import Query
from fastapi.responses import StreamingResponse

from service import models
from service.api.deps import CurrentPrincipal, v1_router
from service.core.db import session_scope
from service.keys import Principal
from service.schemas.common import ErrorBody

router = v1_router("/v1/models", "models")

# The same names as `service.ml.export.ExportFormat`, spelled here so that this module does not
# import TensorFlow when the API starts.
ExportFormat = Literal["savedmodel", "onnx"]


@lru_cache
def _exports() -> anyio.CapacityLimiter:
    """At most two exports at once in a process: each traces and converts a graph, seconds of
    CPU and a model's worth of memory, and must not starve the predictions' threads."""
    return anyio.CapacityLimiter(2)


def _lookup(principal: Principal, model_id: str) -> tuple[str, str]:
    """The model's own id (the file names use it, never the text the client sent) and its
    artifact, from a short unit of work of its own: no database connection stays checked out
    for the seconds the export takes."""
    with session_scope() as session:
        model = models.get(session, principal, model_id)
        return model.id, model.storage_key


@router.get(
    "/{model_id:path}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "savedmodel: a .tar.gz of `<model_id>/1/` (a TF Serving model base "
            "path); onnx: one .onnx file.",
            "content": {"application/gzip": {}, "application/octet-stream": {}},
        },
        409: {
            "model": ErrorBody,
            "description": "The model cannot be converted to that format (ONNX: string inputs, "
            "an activation ONNX lacks).",
        },
    },
)
async def export_model(
    principal: CurrentPrincipal,
    model_id: str,
    export_format: Annotated[
        ExportFormat,
        Query(
            alias="format",
            description="`savedmodel` (TensorFlow SavedModel for TF Serving) or `onnx`.",
        ),
    ],
) -> StreamingResponse:
    """The model, preprocessing included, as a TensorFlow SavedModel (`serving_default`
    signature) or as ONNX; its inputs are named as in `input_schema.features[].input`."""
    found_id, storage_key = await anyio.to_thread.run_sync(_lookup, principal, model_id)
    from service.ml import export  # loads TensorFlow on first use, not at API start

    exported = await anyio.to_thread.run_sync(
        export.export, storage_key, found_id, export_format, limiter=_exports()
    )
    return StreamingResponse(
        _chunks(exported.handle),
        media_type=exported.media_type,
        headers={
            "Content-Length": str(exported.size),
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "Cache-Control": "no-store",
        },
    )


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """The export in 1 MiB pieces. Its file is already unlinked: closing the handle frees it."""
    with handle:
        yield from iter(lambda: handle.read(1 << 20), b"")
