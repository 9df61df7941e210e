"""The `dendrite` command: `serve` (embedded: API + one worker), `api`, `worker`, `migrate`, and
`keys` to manage API keys."""

import ctypes
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from service import keys
from service.api.http import PROTOCOL
from service.core import filemodes, logs, stderr
from service.core.config import get_settings
from service.core.db import session_scope, upgrade_database
from service.core.errors import DendriteError

PR_SET_PDEATHSIG = 1  # linux/prctl.h
API_SHUTDOWN_SECONDS = 20  # below compose's stop_grace_period for the API (30 s)

app = typer.Typer(help="dendrite: train Keras networks over HTTP.", no_args_is_help=True)

keys_app = typer.Typer(
    help="Manage API keys: each belongs to an owner, who sees only their own things.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@app.callback()
def _private_files() -> None:
    """Every command: files and folders it or its children create are the running user's
    alone (0600 / 0700; `service.core.filemodes`)."""
    filemodes.restrict_umask()


Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


def worker_command(
    concurrency: int, queues: str, name: str | None, banner: bool = True
) -> list[str]:
    command = [
        sys.executable, "-m", "celery", *([] if banner else ["--quiet"]),
        "-A", "workers.celery_app", "worker",
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
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_uvicorn_options(),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once on this machine.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "training",
    name: Annotated[str | None, typer.Option(help="Celery node name, e.g. w1@%h.")] = None,
) -> None:
    """Run a training worker (jobs run in child processes, each reused for several jobs)."""
    command = worker_command(concurrency, queues, name)
    _quiet_tensorflow()
    os.execv(command[0], command)


@app.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Jobs trained at once (default DENDRITE_EMBEDDED_CONCURRENCY)."),
    ] = None,
) -> None:
    """Embedded mode: migrate, then run the API and a worker (SQLite + on-disk broker)."""
    settings = get_settings()
    filemodes.private_dir(settings.data_dir, tighten=True)
    upgrade_database()
    _print_auth_hint()
    # uvicorn re-raises SIGTERM after its graceful shutdown; as SystemExit it reaches `finally`.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _quiet_tensorflow()
    notes = stderr.Filter()
    notes.install()  # the API's stderr, and the worker's from its start
    child = subprocess.Popen(
        worker_command(
            concurrency or settings.embedded_concurrency,
            "training,training-gpu",
            "embedded@%h",
            banner=False,  # Celery's; the worker's log says when it is ready
        ),
        preexec_fn=_die_with_parent,  # no threads exist yet, so preexec_fn is safe
        start_new_session=True,
    )
    notes.start()
    try:
        uvicorn.run(
            "service.main:create_app", factory=True, host=host, port=port, **_uvicorn_options()
        )
    finally:
        child.terminate()  # a running job checkpoints and is handed back at its epoch's end
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
        notes.close()


def _uvicorn_options() -> dict[str, Any]:
    """dendrite's HTTP protocol (header, body and connection limits: `service.api.http`) and
    logging; on SIGTERM uvicorn stops accepting connections and gives requests in flight (a long
    upload, an event stream) this long to end."""
    settings = get_settings()
    return {
        "http": PROTOCOL,
        "limit_concurrency": settings.max_connections,  # answered by PROTOCOL's 503 envelope
        "log_config": logs.config_dict(settings.log_format),
        "timeout_graceful_shutdown": API_SHUTDOWN_SECONDS,
    }


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ INFO and WARNING lines (CPU instructions, oneDNN, no CUDA driver) ask
    nothing of the user; its errors still show. The worker processes inherit this."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """On Linux the worker gets SIGTERM when `serve` dies, even by SIGKILL: no orphans."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _print_auth_hint() -> None:
    if not get_settings().auth_enabled:
        typer.echo("authentication is OFF: every request acts as the admin (see the log warning)")
        return
    with session_scope() as session:
        _, count = keys.page(session, limit=0)
    typer.echo(
        f"requests need an API key (Authorization: Bearer <key>); {count} key(s) exist. "
        "Create one (from any directory) with:"
    )
    typer.echo(f"  {_dendrite_command()} keys create NAME")


def _dendrite_command() -> str:
    """This dendrite, as a shell command that works on this server's database from any directory:
    the virtual environment's executable (./scripts/serve puts none on the PATH), with the data
    directory when the database lives there (else the same DENDRITE_* settings are needed)."""
    settings = get_settings()
    if settings.embedded_database is None:
        return _executable()
    return f"DENDRITE_DATA_DIR={shlex.quote(str(settings.data_dir.resolve()))} {_executable()}"


def _executable() -> str:
    executable = Path(sys.executable).parent / "dendrite"
    if executable.is_file():
        return shlex.quote(str(executable))
    return f"{shlex.quote(sys.executable)} -m service.cli"


def _open_server_database() -> None:
    """Keys are the server's: with the default data directory (./dendrite-data, under whatever
    directory this runs in) and no database there, refuse rather than start an empty one whose
    keys the server would never know."""
    settings = get_settings()
    database = settings.embedded_database
    default_data_dir = "data_dir" not in settings.model_fields_set
    if database is not None and default_data_dir and not database.exists():
        typer.echo(
            f"error: no dendrite database in {database.parent}: DENDRITE_DATA_DIR is not set, so "
            "the data directory is ./dendrite-data under the current directory. Set it to the "
            "server's data directory, as in the command `dendrite serve` prints as it starts:\n"
            f"  DENDRITE_DATA_DIR=/path/to/dendrite-data {_executable()} keys create NAME\n"
            "or run this in the directory the server runs in (`dendrite migrate` starts a new "
            "database here).",
            err=True,
        )
        raise typer.Exit(1)
    upgrade_database()


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="The owner: whose datasets, jobs and models.")],
    admin: Annotated[bool, typer.Option("--admin", help="May see every owner's things.")] = False,
) -> None:
    """Create a key for NAME and print it as the last line (it is shown once)."""
    _open_server_database()
    try:
        with session_scope() as session:
            key, token = keys.create(session, name, admin=admin)
    except DendriteError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(1) from None
    kind = "admin key" if admin else "key"
    typer.echo(f"created {kind} {key.prefix}... (id {key.id}) for owner '{key.owner}'")
    typer.echo("this is the only time the key is shown; send it as 'Authorization: Bearer <key>':")
    typer.echo(token)


@keys_app.command("list")
def list_keys() -> None:
    """List keys: id, owner, prefix, admin, created, revoked (never the keys themselves)."""
    _open_server_database()
    with session_scope() as session:
        rows, _ = keys.page(session)
    typer.echo(f"{'id':32}  {'owner':20}  {'prefix':11}  admin  {'created':19}  revoked")
    for key in rows:
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked_at else "-"
        typer.echo(
            f"{key.id:32}  {key.owner:20}  {key.prefix:11}  {'yes' if key.is_admin else 'no':5}  "
            f"{key.created_at:%Y-%m-%d %H:%M:%S}  {revoked}"
        )


@keys_app.command("revoke")
def revoke_key(
    id_or_prefix: Annotated[str, typer.Argument(help="The key's id or prefix (or the key).")],
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    _open_server_database()
    try:
        with session_scope() as session:
            key = keys.revoke(session, id_or_prefix)
    except DendriteError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked key {key.prefix}... (id {key.id}) of owner '{key.owner}'")


if __name__ == "__main__":
    app()
