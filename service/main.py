"""create_app(): the FastAPI application."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from service import recovery, webhooks
from service.api import docs, errors
from service.api.key_before_body import KeyBeforeBody
from service.api.limits import RequestLimits
from service.api.prometheus import RequestMetrics
from service.api.quota_before_body import QuotaBeforeBody
from service.api.routes import batch_predictions as batch_routes
from service.api.routes import datasets, health, inference_v2, models, validation
from service.api.routes import diagnostics as diagnostic_routes
from service.api.routes import events as event_routes
from service.api.routes import export as export_routes
from service.api.routes import inspection as inspection_routes
from service.api.routes import jobs as job_routes
from service.api.routes import keys as key_routes
from service.api.routes import prometheus as metric_routes
from service.api.routes import registry as registry_routes
from service.api.routes import repeats as repeat_routes
from service.api.routes import sweeps as sweep_routes
from service.api.routes import webhooks as webhook_routes
from service.api.security_headers import SecurityHeaders
from service.console.mount import install_console
from service.core.config import get_settings
from service.core.db import session_scope
from service.experiments import repeats

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload a dataset, describe a Keras network as JSON, and train it on a Celery worker.
Then read its per-epoch history, its evaluation, and ask the model for predictions.

Try it here: upload `concrete_data.csv` with name `concrete` (POST /v1/datasets), then submit the
"concrete" example of POST /v1/jobs as it stands.
"""


def _recover() -> None:
    with session_scope() as session:
        recovered = recovery.recover_silent(session)
        repeats.settle_stuck(session)
    if recovered:
        log.warning("recovered jobs: %s", recovered)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Every API process recovers lost jobs (each transition is conditional, so they never collide):
    # jobs of workers that went silent go back to the queue, and queued jobs the broker lost are
    # sent again.
    settings = get_settings()
    interval = max(min(settings.stale_after, settings.redispatch_after) / 4, 1.0)

    async def recover_forever() -> None:
        while True:
            try:
                await run_in_threadpool(_recover)
            except Exception:
                log.exception("job recovery failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(recover_forever())
    # Webhooks go out from here too, not from a training worker (one TensorFlow process per task).
    deliveries = asyncio.create_task(webhooks.deliver_forever())
    yield
    task.cancel()
    deliveries.cancel()


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
        docs_url=None,  # docs.install serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(RequestLimits)
    app.add_middleware(QuotaBeforeBody)  # an upload past its owner's quota: after the key check
    app.add_middleware(KeyBeforeBody)  # before anything reads a body
    app.add_middleware(RequestMetrics)  # outermost: times refused bodies too
    app.add_middleware(SecurityHeaders)  # on every response, refusals included
    app.include_router(metric_routes.router)
    for router in (
        health.router,
        datasets.router,
        job_routes.router,
        validation.router,
        models.router,
    ):
        app.include_router(router)
    app.include_router(diagnostic_routes.router)
    app.include_router(inspection_routes.router)
    app.include_router(export_routes.router)
    app.include_router(repeat_routes.router)
    app.include_router(sweep_routes.router)
    app.include_router(registry_routes.router)
    app.include_router(inference_v2.router)
    app.include_router(event_routes.router)
    app.include_router(batch_routes.router)
    app.include_router(event_routes.batch_router)
    app.include_router(webhook_routes.router)
    app.include_router(key_routes.router)
    install_console(app)
    docs.install(app)
    return app
