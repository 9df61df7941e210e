"""create_app(): the FastAPI application."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from service import jobs
from service.api import errors
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


def _sweep_stale() -> None:
    with session_scope() as session:
        count = jobs.fail_stale(session, get_settings().stale_after)
    if count:
        log.warning("failed %d job(s) whose worker stopped sending heartbeats", count)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async def sweep_forever() -> None:
        while True:
            try:
                await run_in_threadpool(_sweep_stale)
            except Exception:
                log.exception("stale-job sweep failed")
            await asyncio.sleep(max(get_settings().stale_after / 4, 1.0))

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()


def create_app() -> FastAPI:
    app = FastAPI(title="dendrite", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    errors.install(app)
    for router in (health.router, datasets.router, job_routes.router, specs.router, models.router):
        app.include_router(router)
    return app
