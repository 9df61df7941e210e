"""Trained models: read, predict (JSON or CSV), download."""

import io
import re
from collections.abc import Iterator
from typing import IO, Any

import pandas as pd
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from service import models
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.core.errors import InvalidInput, UnsupportedMediaType
from service.schemas import examples
from service.schemas.common import Page
from service.schemas.models import MAX_INSTANCES, ModelRead, PredictRequest, PredictResponse

router = v1_router("/v1/models", "models")

_CSV_EXAMPLE = (
    "Cement,Blast Furnace Slag,Fly Ash,Water,Superplasticizer,Coarse Aggregate,Fine Aggregate,Age\n"
    "540.0,0.0,0.0,162.0,2.5,1040.0,676.0,28\n"
)
_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                "example": examples.CONCRETE_PREDICT,
            },
            "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
        },
    },
    "responses": {
        "200": {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
}


@router.get("", response_model=Page[ModelRead])
def list_models(
    session: SessionDep, principal: CurrentPrincipal, limit: Limit = 50, offset: Offset = 0
) -> Page[ModelRead]:
    """List your trained models, newest first."""
    items, total = models.page(session, principal, limit, offset)
    return Page(items=[models.to_read(m) for m in items], total=total, limit=limit, offset=offset)


@router.get("/{model_id}", response_model=ModelRead)
def get_model(session: SessionDep, principal: CurrentPrincipal, model_id: str) -> ModelRead:
    """A trained model: its job, task, input schema, outputs (targets, labels), test metrics.
    `model_id` may also be `name@alias` (a registered model's alias); wherever a model id is taken
    (predict, forward, weights, download), `name@alias` and `name/versions/n` are too."""
    return models.to_read(models.get(session, principal, model_id))


@router.get("/{name}/versions/{version}", response_model=ModelRead)
def get_model_version(
    session: SessionDep, principal: CurrentPrincipal, name: str, version: int
) -> ModelRead:
    """The model a registered model's version holds (as `GET /v1/models/{name@alias}` does for
    an alias)."""
    return models.to_read(models.get(session, principal, f"{name}/versions/{version}"))


def _parse_csv(body: bytes) -> list[dict[str, Any]]:
    """The CSV's rows as records; the parser stops one row past MAX_INSTANCES, so a body of
    millions of tiny rows is refused before it becomes millions of records."""
    try:
        frame = pd.read_csv(io.BytesIO(body), skipinitialspace=True, nrows=MAX_INSTANCES + 1)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise InvalidInput(f"the CSV body cannot be read: {error}") from None
    if len(frame) > MAX_INSTANCES:
        raise InvalidInput(
            f"the CSV body has more than {MAX_INSTANCES:,} rows; one request predicts at most "
            f"{MAX_INSTANCES:,} instances (as with JSON): split the rows into several requests"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    records: list[dict[str, Any]] = (
        frame.astype(object).where(frame.notna(), None).to_dict("records")
    )
    return records


def _to_csv(predictions: list[dict[str, Any]]) -> str:
    rows = []
    for prediction in predictions:
        if "probabilities" in prediction:
            row = {"label": prediction["label"]}
            row.update({f"p_{k}": v for k, v in prediction["probabilities"].items()})
            rows.append(row)
        else:
            rows.append(prediction)
    return str(pd.DataFrame(rows).to_csv(index=False))


@router.post(
    "/{model_id:path}/predict", response_model=PredictResponse, openapi_extra=_PREDICT_BODY
)
async def predict(principal: CurrentPrincipal, model_id: str, request: Request) -> Any:
    """Predict from raw rows: JSON `{"instances": [...]}` in, JSON out; or CSV in, CSV out."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    body = await request.body()
    if content_type == "text/csv":
        instances: list[Any] = _parse_csv(body)
        if not instances:
            raise InvalidInput("the CSV body has no rows")
    elif content_type in ("application/json", ""):
        try:
            instances = PredictRequest.model_validate_json(body).instances
        except ValidationError as error:
            first = error.errors()[0]
            pointer = "/" + "/".join(str(p) for p in first["loc"])
            raise InvalidInput(f"{pointer}: {first['msg']}", field=pointer) from None
    else:
        raise UnsupportedMediaType(
            f"Content-Type '{content_type}' is not accepted; send application/json or text/csv"
        )
    # One thread for the lookup and the model (no request-long session: a recently seen model
    # needs no database), and pydantic's own JSON encoder for the answer.
    predictions = await run_in_threadpool(models.predict, principal, model_id, instances)
    if content_type == "text/csv":
        return Response(_to_csv(predictions), media_type="text/csv")
    return Response(
        PredictResponse(predictions=predictions).model_dump_json(), media_type="application/json"
    )


@router.get(
    "/{model_id:path}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_model(
    session: SessionDep, principal: CurrentPrincipal, model_id: str
) -> StreamingResponse:
    """The `.keras` file: self-contained, preprocessing included; load it with safe_mode."""
    handle, size = models.open_file(session, principal, model_id)
    return StreamingResponse(
        _chunks(handle),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="dendrite-{_file_name(model_id)}.keras"',
        },
    )


def _file_name(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_id)


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """The file in 1 MiB pieces, read from the artifact store as the client takes them."""
    with handle:
        yield from iter(lambda: handle.read(1 << 20), b"")
