"""create_app(): the FastAPI application."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from service import attempts
from service.api import errors
from service.api.limits import RequestLimits
from service.api.routes import datasets, health, models, specs
from service.api.routes import jobs as job_routes
from service.config import get_settings
from service.db import session_scope

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload a dataset, describe a Keras network as JSON, and train it on a Celery worker.
Then read its per-epoch history, its evaluation, and ask the model for predictions.

Try it here: upload `concrete_data.csv` with name `concrete` (POST /v1/datasets), then submit the
"concrete" example of POST /v1/jobs as it stands.
"""


def _sweep() -> None:
    with session_scope() as session:
        swept = attempts.sweep(session)
    if swept:
        log.warning("recovered jobs: %s", swept)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Every API process sweeps (each transition is conditional, so they never collide): jobs of
    # workers that went silent go back to the queue, and queued jobs the broker lost are sent again.
    settings = get_settings()
    interval = max(min(settings.stale_after, settings.redispatch_after) / 4, 1.0)

    async def sweep_forever() -> None:
        while True:
            try:
                await run_in_threadpool(_sweep)
            except Exception:
                log.exception("job sweep failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()


AUTH_OFF_WARNING = (
    "authentication is OFF (DENDRITE_AUTH_ENABLED=false): anyone who can reach this port can read, "
    "train on and delete every dataset, job and model, as an admin. Use this only on a machine "
    "you alone can reach; otherwise unset it and create keys with `dendrite keys create NAME`."
)


def create_app() -> FastAPI:
    if not get_settings().auth_enabled:
        log.warning("WARNING: %s", AUTH_OFF_WARNING)
    app = FastAPI(
        title="dendrite",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=errors.RESPONSES,
    )
    errors.install(app)
    app.add_middleware(RequestLimits)
    for router in (health.router, datasets.router, job_routes.router, specs.router, models.router):
        app.include_router(router)
    return app
