"""Keras callbacks and a heartbeat thread that tie a running fit to its row in the job table."""

import threading
import time
from typing import Any

import keras
from sqlalchemy import select, update

from service.db import session_scope
from service.orm import EpochMetric, Job, utcnow


class Heartbeat(threading.Thread):
    """Marks the job alive every `interval` seconds and notices a cancel request between epochs."""

    def __init__(self, job_id: str, cancel: threading.Event, interval: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id, self.cancel, self.interval = job_id, cancel, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            with session_scope() as session:
                session.execute(
                    update(Job).where(Job.id == self.job_id).values(heartbeat_at=utcnow())
                )
                if session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                    self.cancel.set()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 5)


class EpochRecorder(keras.callbacks.Callback):
    """Writes each epoch's logs to the history table and the job's progress; stops on cancel."""

    def __init__(self, job_id: str, cancel: threading.Event) -> None:
        super().__init__()
        self.job_id, self.cancel = job_id, cancel
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        seconds = time.perf_counter() - self._started
        with session_scope() as session:
            session.add(
                EpochMetric(job_id=self.job_id, epoch=epoch + 1, metrics=metrics, seconds=seconds)
            )
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(epoch=epoch + 1, latest_metrics=metrics, heartbeat_at=utcnow())
            )
            if session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                self.cancel.set()
        if self.cancel.is_set():
            self.model.stop_training = True
