"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
DENDRITE_TEST_DATABASE_URL names one), emptied after every test, settings in a temp dir, and an
S3 artifact store on a real S3 HTTP endpoint on loopback (moto's server, a separate process)."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from service.core.config import Settings, get_settings
from service.core.db import get_engine, get_sessionmaker, upgrade_database
from service.core.orm import Base

DATA = Path(__file__).parent / "data"
# moto accepts any credentials; botocore reads them from the environment as it would AWS's.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dendrite-test",
    "AWS_SECRET_ACCESS_KEY": "dendrite-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DENDRITE_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    elif url.startswith("postgresql"):
        # The test database outlives a run: start from an empty schema, so the migrations build
        # it exactly as they would a new deployment's.
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade_database(url)
    return url


@pytest.fixture(autouse=True)
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Iterator[Settings]:
    monkeypatch.setenv("DENDRITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DENDRITE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    with get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 HTTP endpoint on loopback: `python -m moto.server` in its own process, stopped
    at the end of the session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"moto's S3 server exited: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start: {log}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket on the S3 endpoint."""
    import boto3

    name = f"dendrite-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    client.create_bucket(Bucket=name)
    client.close()
    return name


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """The artifact store in a fresh bucket on the S3 endpoint, under a prefix."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DENDRITE_ARTIFACTS_URL", f"s3://{new_bucket(s3_endpoint)}/artifacts")
    monkeypatch.setenv("DENDRITE_S3_ENDPOINT_URL", s3_endpoint)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def concrete_dataset_id(session: Session) -> str:
    """The course's concrete data, uploaded by `alice` through the use case and committed."""
    from service import datasets, keys

    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(
            session, keys.Principal(owner="alice"), handle, "concrete_data.csv", "text/csv", None
        )
    session.commit()
    return dataset.id
