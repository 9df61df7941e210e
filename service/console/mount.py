"""The console's routers, its static files and `/` leading to it, added to the app."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from service.console import compare, datasets, events, jobs, keys, registry, sessions, sweeps
from service.console.pages import SessionBeforeBody

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    """Add the console's pages, its static files, and `/` leading to it."""
    for module in (sessions, datasets, jobs, events, compare, sweeps, registry, keys):
        app.include_router(module.router)
    app.add_middleware(SessionBeforeBody)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=303)
