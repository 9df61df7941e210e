"""The callbacks that tie a fit to its job row (workers/callbacks.py): the history writer
(`EpochRecorder`), the stop reasons, the heartbeat, and checkpoints committed by their metadata."""

import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

import keras
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core import logs, queue
from service.core.orm import EpochMetric, utcnow
from service.leases import Attempt
from tests import leasing
from workers import shutdown
from workers.callbacks import Checkpoint, EpochRecorder, Heartbeat, Stop


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


@pytest.fixture(autouse=True)
def broker() -> None:
    queue.celery.cache_clear()


def _fit(callbacks: list[keras.callbacks.Callback], epochs: int) -> keras.Model:
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    model.fit(x, x[:, :1], epochs=epochs, batch_size=8, verbose=0, callbacks=callbacks)
    return model


def _later() -> Stop:
    return Stop(utcnow() + timedelta(hours=1))


def test_the_recorder_writes_each_epoch_and_the_job_s_progress(session: Session) -> None:
    job = leasing.submit(session)
    attempt = leasing.claim(session, job)
    recorder = EpochRecorder(attempt, _later(), epochs=3)

    _fit([recorder], epochs=3)

    rows = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job.id)).all()
    assert [row.epoch for row in sorted(rows, key=lambda r: r.epoch)] == [1, 2, 3]
    assert all(set(row.metrics) == {"loss"} and row.seconds > 0 for row in rows)
    session.refresh(job)
    assert job.latest_metrics is not None and job.latest_metrics["loss"] == rows[-1].metrics["loss"]
    assert recorder.stopped_for is None and recorder.write_seconds > 0


def test_a_cancel_stops_the_fit_at_the_next_epoch_boundary(session: Session) -> None:
    job = leasing.submit(session)
    attempt = leasing.claim(session, job)
    job.cancel_requested = True
    session.commit()
    recorder = EpochRecorder(attempt, _later(), epochs=5)

    _fit([recorder], epochs=5)

    assert recorder.stopped_for == "cancelled"
    epochs = session.scalars(select(EpochMetric.epoch).where(EpochMetric.job_id == job.id)).all()
    assert epochs == [1]  # the epoch in progress is kept, no more


def test_an_attempt_taken_over_records_nothing_more(session: Session) -> None:
    job = leasing.submit(session)
    attempt = leasing.claim(session, job)
    stale = Attempt(job.id, attempt.worker, attempt.number - 1, attempt.started_at)
    recorder = EpochRecorder(stale, _later(), epochs=4)

    _fit([recorder], epochs=4)

    assert recorder.stopped_for == "lost"
    assert session.scalars(select(EpochMetric).where(EpochMetric.job_id == job.id)).all() == []


def test_a_shutdown_hands_back_at_the_boundary_unless_training_is_done(
    session: Session,
) -> None:
    midway = EpochRecorder(leasing.claim(session, leasing.submit(session)), _later(), epochs=3)
    done = EpochRecorder(leasing.claim(session, leasing.submit(session)), _later(), epochs=1)
    shutdown.requested.set()
    try:
        _fit([midway], epochs=3)
        _fit([done], epochs=1)
    finally:
        shutdown.requested.clear()

    assert midway.stopped_for == "hand_back"  # at epoch 1 of 3
    assert done.stopped_for is None  # its last epoch: finishing beats handing back


def test_stop_reasons_rank_lost_over_cancelled_over_expired() -> None:
    stop = Stop(utcnow() - timedelta(seconds=1))
    assert stop.reason is None
    stop.check_deadline()
    assert stop.reason == "expired"
    stop.cancelled.set()
    assert stop.reason == "cancelled"
    stop.lost.set()
    assert stop.reason == "lost"


def test_a_checkpoint_is_committed_by_its_metadata_and_keeps_one_weights_file(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "checkpoint"
    checkpoint = Checkpoint("job-1", folder, interval=0.0, stop=_later())

    _fit([checkpoint], epochs=3)  # saves at epoch 1, then spaced by 20 x a save's cost

    committed = json.loads((folder / "training_metadata.json").read_text())["epoch"]
    assert 1 <= committed <= 3 and checkpoint.saved_epoch() == committed
    names = sorted(path.name for path in folder.glob("*.weights.h5"))
    assert names == [f"epoch-{committed}.weights.h5"]
    (folder / names[0]).unlink()  # torn: the metadata names a missing file
    assert checkpoint.saved_epoch() == 0


def test_a_job_about_to_be_handed_back_checkpoints_its_last_epoch(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    stop = _later()
    shutdown.requested.set()
    try:
        _fit([Checkpoint("job-1", folder, interval=3600.0, stop=stop)], epochs=2)
    finally:
        shutdown.requested.clear()

    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == 2
