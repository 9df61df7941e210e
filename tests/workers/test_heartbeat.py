"""The heartbeat thread's log records carry the id of the job it beats for."""

import logging
import threading
from datetime import timedelta

from service.core import logs
from service.core.orm import utcnow
from service.leases import Attempt
from workers.callbacks import Heartbeat, Stop


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(logs.JobIdFilter())
        self.records: list[logging.LogRecord] = []
        self.logged = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.logged.set()


class FailingHeartbeat(Heartbeat):
    def beat(self) -> None:
        raise ConnectionError("the database went away")


def test_a_failed_beat_is_logged_with_the_job_id() -> None:
    attempt = Attempt(job_id="job-7", worker="w@host", number=1, started_at=utcnow())
    heartbeat = FailingHeartbeat(attempt, Stop(utcnow() + timedelta(hours=1)), interval=0.01)
    records = Records()
    logger = logging.getLogger("workers.callbacks")
    logger.addHandler(records)
    try:
        heartbeat.start()
        assert records.logged.wait(timeout=10)
        heartbeat.stop()
    finally:
        logger.removeHandler(records)
    record = records.records[0]
    assert "heartbeat for job job-7 failed" in record.getMessage()
    assert getattr(record, "job_id", None) == "job-7"
