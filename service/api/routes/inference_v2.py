"""The Open Inference Protocol (KServe v2), REST: health, server and model metadata, readiness and
inference on registered models (`service.oip`), beside dendrite's own `/v1/.../predict`.

Errors are the protocol's `{"error": "..."}`: 400 for a request the model cannot take (wrong
shape, datatype or input name), 404 for an unknown model or version. Like `/v1`, every model
route needs an API key; the health routes do not.
"""

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from service import models, oip
from service.api.deps import AUTH_RESPONSES, CurrentPrincipal, SessionDep, v1_router
from service.api.routes import health
from service.core.errors import DendriteError, InvalidInput, NotFound


class InferenceError(BaseModel):
    """The protocol's error body."""

    error: str


MODEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: {"model": InferenceError, "description": "A request the model cannot take."},
    404: {"model": InferenceError, "description": "No such registered model or version."},
}
router = v1_router("/v2", "open inference protocol (v2)", documents_401=False)


def _error(error: DendriteError) -> JSONResponse:
    status = 404 if isinstance(error, NotFound) else 400 if error.status_code < 500 else 500
    return JSONResponse({"error": error.detail}, status_code=status)


def _server_version() -> str:
    try:
        return package_version("dendrite")
    except PackageNotFoundError:
        return "0"


@router.get("")
def server_metadata() -> dict[str, Any]:
    """The server's name, version and protocol extensions (none)."""
    return {"name": "dendrite", "version": _server_version(), "extensions": []}


@router.get("/health/live")
def server_live() -> dict[str, bool]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/health/ready")
async def server_ready() -> JSONResponse:
    """200 when the database, the broker and the artifact store answer (as `/readyz`), else 503."""
    ready = (await health.readyz()).status_code == 200
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _metadata(session: Any, principal: Any, name: str, version: str | None) -> Response:
    try:
        number = oip.version_of(session, principal, name, version)
        return JSONResponse(oip.metadata(session, principal, name, number))
    except DendriteError as error:
        return _error(error)


@router.get("/models/{name}", responses=MODEL_RESPONSES)
def model_metadata(session: SessionDep, principal: CurrentPrincipal, name: str) -> Response:
    """Inputs and outputs (name, datatype, shape; -1 where the size varies) of the version the
    name serves: its `production` alias, else its latest version."""
    return _metadata(session, principal, name, None)


@router.get("/models/{name}/versions/{version}", responses=MODEL_RESPONSES)
def model_version_metadata(
    session: SessionDep, principal: CurrentPrincipal, name: str, version: str
) -> Response:
    """Inputs and outputs of one version."""
    return _metadata(session, principal, name, version)


def _ready(session: Any, principal: Any, name: str, version: str | None) -> Response:
    try:
        oip.version_of(session, principal, name, version)
    except DendriteError as error:
        return _error(error)
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready", responses=MODEL_RESPONSES)
def model_ready(session: SessionDep, principal: CurrentPrincipal, name: str) -> Response:
    """200 when the name has a version to serve."""
    return _ready(session, principal, name, None)


@router.get("/models/{name}/versions/{version}/ready", responses=MODEL_RESPONSES)
def model_version_ready(
    session: SessionDep, principal: CurrentPrincipal, name: str, version: str
) -> Response:
    """200 when the version exists."""
    return _ready(session, principal, name, version)


def _infer(principal: Any, name: str, version: str | None, body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except ValueError:
        raise InvalidInput("the body is not JSON") from None
    if not isinstance(request, dict):
        raise InvalidInput("the body must be an inference request object")
    number = oip.cached_version(principal, name, version)
    reference = f"{name}/versions/{number}"
    served = models.served(principal, reference)
    predictions = models.predict(principal, reference, oip.instances(served, request.get("inputs")))
    return oip.response(
        served, name, str(number), predictions, request.get("outputs"), request.get("id")
    )


async def _infer_response(
    principal: Any, name: str, version: str | None, request: Request
) -> Response:
    body = await request.body()
    try:
        answer = await run_in_threadpool(_infer, principal, name, version, body)
    except DendriteError as error:
        return _error(error)
    return JSONResponse(answer)


@router.post("/models/{name}/infer", responses=MODEL_RESPONSES)
async def model_infer(principal: CurrentPrincipal, name: str, request: Request) -> Response:
    """Inference: `{"inputs": [{name, shape, datatype, data}], "outputs"?: [{name}], "id"?}`
    with row-major flattened data (docs: the inference protocol page)."""
    return await _infer_response(principal, name, None, request)


@router.post("/models/{name}/versions/{version}/infer", responses=MODEL_RESPONSES)
async def model_version_infer(
    principal: CurrentPrincipal, name: str, version: str, request: Request
) -> Response:
    """Inference on one version."""
    return await _infer_response(principal, name, version, request)
