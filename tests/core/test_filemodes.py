"""What dendrite keeps on disk is its user's alone: folders 0700, files 0600.

Each test runs under the common umask 0o022, with which files come out 0644 (world-readable)
unless dendrite sees to it. The last test walks the data folder of a real `dendrite serve` that
received a dataset and trained a model; the others check each place that makes files.
"""

import logging
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.core import filemodes, queue, storage
from service.core.config import Settings
from service.core.db import make_engine
from tests.e2e.conftest import DENDRITE, Service, free_port, service_env
from tests.e2e.flows import FINAL, concrete_job, submit, upload

LOOSE_UMASK = 0o022


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The umask most systems give a shell: files 0644, folders 0755."""
    previous = os.umask(LOOSE_UMASK)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_to_others(root: Path) -> dict[str, str]:
    """Every path under `root` (and `root`) that its group or others may use, with its mode."""
    found = {}
    for path in [root, *root.rglob("*")]:
        try:
            bits = mode(path)
        except FileNotFoundError:  # removed while we walked (a broker message, a checkpoint)
            continue
        if bits & 0o077:
            found[str(path.relative_to(root.parent))] = f"{bits:03o}"
    return found


def test_private_dir_makes_each_missing_folder_0700(tmp_path: Path) -> None:
    folder = filemodes.private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", folder)] == [0o700] * 3


def test_private_dir_tightens_an_existing_loose_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    assert mode(folder) == 0o755
    with caplog.at_level(logging.WARNING, logger="service.core.filemodes"):
        filemodes.private_dir(folder, tighten=True)
    assert mode(folder) == 0o700
    assert "made it 700" in caplog.text


def test_a_folder_of_another_user_is_left_alone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: sticky, everyone's
    with caplog.at_level(logging.WARNING, logger="service.core.filemodes"):
        filemodes.private_dir(shared, tighten=True)
    assert mode(shared) == 0o1777
    assert "not this user's to change" in caplog.text


def test_restrict_umask_keeps_a_stricter_one() -> None:
    os.umask(0o027)
    assert filemodes.restrict_umask() == 0o027
    assert os.umask(LOOSE_UMASK) == 0o077
    os.umask(0o277)
    filemodes.restrict_umask()
    assert os.umask(LOOSE_UMASK) == 0o277


def test_sqlite_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "dendrite.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE secrets (value TEXT)"))
        connection.execute(text("INSERT INTO secrets VALUES ('whsec_...')"))
        files = {p.name: mode(p) for p in tmp_path.iterdir() if p.name.startswith("dendrite.db")}
    engine.dispose()
    assert {"dendrite.db", "dendrite.db-wal", "dendrite.db-shm"} <= set(files)
    assert set(files.values()) == {0o600}, files


def test_an_older_world_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "dendrite.db"
    with sqlite3.connect(database) as connection:  # as an older dendrite left it
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
    (tmp_path / "dendrite.db-wal").touch()
    assert mode(database) == 0o644
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert mode(database) == 0o600
    assert all(mode(p) == 0o600 for p in tmp_path.glob("dendrite.db*"))


def test_local_store_files_and_folders_are_private(settings: Settings) -> None:
    storage.write_stream("datasets/abc.csv", [b"a,b\n1,2\n"], 1 << 20)
    with storage.local_target("models/m1.bin") as target:
        target.write_bytes(b"model")  # as a library writes it: with the process umask
    root = settings.artifacts_path
    assert mode(root / "datasets" / "abc.csv") == 0o600
    assert {p.name: mode(p) for p in root.rglob("*") if p.is_dir()} == {
        "datasets": 0o700,
        "models": 0o700,
    }
    assert mode(root) == 0o700


def test_embedded_broker_folders_and_messages_are_private(settings: Settings) -> None:
    queue.celery.cache_clear()
    try:
        assert queue.send_now("job-1", "cpu")
    finally:
        queue.celery.cache_clear()
    broker = settings.broker_dir
    messages = list((broker / "queue").glob("*.msg"))
    assert len(messages) == 1
    assert mode(messages[0]) == 0o600
    assert mode(broker) == 0o700
    assert {p.name: mode(p) for p in broker.iterdir() if p.is_dir()} == {
        "queue": 0o700,
        "processed": 0o700,
        "control": 0o700,
    }


def test_cli_makes_the_data_folder_private_and_tightens_an_older_one(tmp_path: Path) -> None:
    """`dendrite keys create` as an operator runs it, on a data folder an older dendrite left
    open (0755, its database 0644), and on a new one."""
    older = tmp_path / "older"
    older.mkdir()
    sqlite3.connect(older / "dendrite.db").close()
    new = tmp_path / "new" / "data"
    for data in (older, new):
        subprocess.run(
            [*DENDRITE, "keys", "create", "alice"],
            env=service_env(DENDRITE_DATA_DIR=str(data)),
            check=True,
            capture_output=True,
        )
        assert (data / "dendrite.db").is_file()
        assert open_to_others(data) == {}


@pytest.mark.e2e
def test_served_data_folder_is_private_after_upload_and_training(tmp_path: Path) -> None:
    """A real `dendrite serve` on a data folder that an older version made 0755: after an upload
    and a training run (checkpoints every epoch), nothing under it is open to others, at any poll
    during the run nor at the end: SQLite's files, the broker's, the dataset, the model."""
    data = tmp_path / "data"
    data.mkdir()
    assert mode(data) == 0o755
    port = free_port()
    env = service_env(DENDRITE_DATA_DIR=str(data), DENDRITE_CHECKPOINT_INTERVAL="0")
    service = Service(f"http://127.0.0.1:{port}", env, tmp_path)
    service.use_new_key()
    service.start("serve", "serve", "--port", str(port))
    loose: dict[str, str] = {}
    names: set[str] = set()
    for ready in service.serve():
        client = ready.client
        dataset = upload(client, "concrete_data.csv", "concrete")
        job = submit(client, concrete_job(dataset["id"], epochs=4))
        deadline = time.monotonic() + 240
        while (state := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in FINAL:
            assert time.monotonic() < deadline, f"job did not end: {state}"
            loose.update(open_to_others(data))
            names.update(p.name for p in data.rglob("*"))
            time.sleep(0.05)
        assert state["status"] == "succeeded", ready.log_text()
        loose.update(open_to_others(data))
        names.update(p.name for p in data.rglob("*"))
    assert {"dendrite.db", "dendrite.db-wal", "broker", "artifacts"} <= names
    assert any(name.endswith(".keras") for name in names)
    assert any(name.startswith(f"{dataset['id']}.") for name in names)
    assert loose == {}
