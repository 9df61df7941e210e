"""Log records as JSON lines or text, carrying the id of the job they were written for."""

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from service.core import logs


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger writing through a handler set up as `logs.config_dict` sets up the root's."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.JobIdFilter())
    logger = logging.getLogger("dendrite.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_record_written_during_a_job_carries_its_id(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.make_formatter("json"))

    with logs.job_context("4f2a"):
        logger.warning("epoch %d took %.1f s", 3, 1.5)
    logger.info("between jobs")

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["job_id"] == "4f2a"
    assert inside["message"] == "epoch 3 took 1.5 s"
    assert inside["level"] == "WARNING" and inside["logger"] == "dendrite.test"
    assert inside["time"] and inside["process"] == os.getpid()
    assert "job_id" not in outside and outside["message"] == "between jobs"


def test_json_record_keeps_the_exception(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.make_formatter("json"))

    with logs.job_context("4f2a"):
        try:
            raise ValueError("no such column")
        except ValueError:
            logger.exception("job failed")

    [record] = (json.loads(line) for line in stream.getvalue().splitlines())
    assert record["job_id"] == "4f2a" and record["level"] == "ERROR"
    assert "ValueError: no such column" in record["exc_info"]


def test_text_record_names_the_job(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.make_formatter("text"))

    with logs.job_context("4f2a"):
        logger.info("started")
    logger.info("idle")

    during, after = stream.getvalue().splitlines()
    assert during.endswith("INFO dendrite.test: started [job 4f2a]")
    assert after.endswith("INFO dendrite.test: idle")


def test_auto_format_is_text_on_a_terminal_and_json_elsewhere() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert logs.resolve("auto", terminal) == "text"
    os.close(leader)
    assert logs.resolve("auto", io.StringIO()) == "json"
    assert logs.resolve("text", io.StringIO()) == "text"


def test_configured_process_writes_json_lines_to_stderr() -> None:
    """`logs.configure`, as the worker calls it: the root logger's records, library loggers'
    included, become JSON lines on stderr."""
    program = (
        "import logging\n"
        "from service.core import logs\n"
        "logs.configure('auto')\n"
        "with logs.job_context('4f2a'):\n"
        "    logging.getLogger('celery.app.trace').info('task succeeded')\n"
        "logging.getLogger('service.main').debug('not at INFO')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )

    [line] = done.stderr.splitlines()  # stderr is a pipe here: auto means JSON
    record = json.loads(line)
    assert record["job_id"] == "4f2a" and record["logger"] == "celery.app.trace"
