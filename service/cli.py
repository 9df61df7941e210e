"""The `dendrite` command: `serve` (embedded: API + one worker), `api`, `worker`, `migrate`."""

import os
import subprocess
import sys
from typing import Annotated

import typer
import uvicorn

from service.config import get_settings
from service.db import upgrade_database

app = typer.Typer(help="dendrite: train Keras networks over HTTP.", no_args_is_help=True)

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


def worker_command(concurrency: int, queues: str, name: str | None) -> list[str]:
    command = [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
        f"--concurrency={concurrency}", f"--queues={queues}", "--loglevel=INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if name:
        command.append(f"--hostname={name}")
    return command


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    upgrade_database()
    typer.echo("database is at the newest migration")


@app.command()
def api(host: Host = "127.0.0.1", port: Port = 8000, workers: int = 1) -> None:
    """Run the HTTP API (stack mode: run `dendrite migrate` and workers beside it)."""
    uvicorn.run("service.main:create_app", factory=True, host=host, port=port, workers=workers)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once on this machine.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "training",
    name: Annotated[str | None, typer.Option(help="Celery node name, e.g. w1@%h.")] = None,
) -> None:
    """Run a training worker (one child process per job)."""
    command = worker_command(concurrency, queues, name)
    os.execv(command[0], command)


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Embedded mode: migrate, then run the API and one worker (SQLite + on-disk broker)."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database()
    child = subprocess.Popen(worker_command(1, "training,training-gpu", "embedded@%h"))
    try:
        uvicorn.run("service.main:create_app", factory=True, host=host, port=port)
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    app()
