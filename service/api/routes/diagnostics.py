"""A job's gradient diagnostics, its plots (PNG or SVG), and an HTML page that shows them live."""

import json
from typing import Annotated

from fastapi import Depends, Path, Query, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials

from service import diagnostics, jobs, keys, plots
from service.api import job_page
from service.api.deps import AUTH_RESPONSES, CurrentPrincipal, SessionDep, bearer, v1_router
from service.core.config import get_settings
from service.core.db import session_scope
from service.formats import figures
from service.schemas.common import ErrorBody
from service.schemas.diagnostics import DiagnosticsRead

router = v1_router("/v1/jobs", "jobs", documents_401=False)

_PLOT_RESPONSES: dict[int | str, dict[str, object]] = {
    **AUTH_RESPONSES,
    200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The plot."},
    404: {"model": ErrorBody, "description": "No such job, or the plot does not apply to it."},
    409: {"model": ErrorBody, "description": "The plot's data is not there yet."},
}


@router.get("/{job_id}/diagnostics", response_model=DiagnosticsRead, responses=AUTH_RESPONSES)
def get_job_diagnostics(
    session: SessionDep, principal: CurrentPrincipal, job_id: str
) -> DiagnosticsRead:
    """Per epoch and layer: gradient norm, dead or saturated units; dead, vanishing, exploding."""
    return diagnostics.read(session, principal, job_id)


@router.get("/{job_id}/plots/{kind}.{fmt}", response_class=Response, responses=_PLOT_RESPONSES)
def get_job_plot(
    session: SessionDep,
    principal: CurrentPrincipal,
    job_id: str,
    kind: Annotated[plots.PlotKind, Path(description="Which plot.")],
    fmt: Annotated[plots.PlotFormat, Path(description="png or svg.")],
    scale: Annotated[
        figures.Scale | None,
        Query(
            description="The y axis of learning-curves (default linear) and gradient-norms "
            "(default log): `linear` or `log`. On a log axis a value of 0 is drawn at a floor "
            "a decade under the smallest positive value (a dashed line, hollow points, "
            "'0 shown at floor' in the legend), never dropped. Other plots take no scale (422)."
        ),
    ] = None,
) -> Response:
    """A plot of the job: learning-curves, confusion-matrix, gradient-norms, predicted-vs-actual.

    Epochs are on the x axis with integer ticks, and the legend sits outside the axes.
    `?scale=log` draws learning-curves on a log axis (gradient-norms are log by default).
    """
    image = plots.render(session, principal, job_id, kind, fmt, scale)
    return Response(image, media_type=figures.FORMATS[fmt], headers={"Cache-Control": "no-store"})


def _optional_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> keys.Principal | None:
    """The key's owner when the request sends a key (or authentication is off); else None."""
    if not get_settings().auth_enabled:
        return keys.LOCAL
    if credentials is None:
        return None
    with session_scope() as session:
        return keys.authenticate(session, credentials.credentials)


@router.get(
    "/{job_id}/page",
    response_class=HTMLResponse,
    responses={
        **AUTH_RESPONSES,
        404: {"model": ErrorBody, "description": "Sent with a key: no such job."},
    },
)
def get_job_page(
    session: SessionDep,
    principal: Annotated[keys.Principal | None, Depends(_optional_principal)],
    job_id: str,
) -> HTMLResponse:
    """An HTML page with the job's plots, updated live; it asks for your API key (no key needed)."""
    if principal is not None:  # a browser sends no key; an API client that does is checked
        jobs.get(session, principal, job_id)
    page = job_page.render(json.dumps(job_id))
    return HTMLResponse(page, headers=job_page.headers(page))
