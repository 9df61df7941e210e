"""Keras callbacks and a heartbeat thread that tie a running fit to its row in the job table:
per-epoch history and progress, checkpoints, and stopping at an epoch boundary when asked to."""

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import keras
from sqlalchemy.orm import Session

from service import leases
from service.core import logs, storage
from service.core.db import session_scope
from service.core.orm import utcnow
from service.leases import Attempt
from workers import shutdown

log = logging.getLogger(__name__)

StopReason = Literal["lost", "cancelled", "expired", "hand_back"]

# A checkpoint of a small network costs about as much as one of its epochs (~25 ms, mostly Keras'
# saving machinery), so checkpoints are spaced in time, and never take more than ~1/20 of it.
SAVE_COST_FACTOR = 20


class Stop:
    """Why training should stop at the next epoch boundary. The heartbeat thread, the epoch
    callback and the SIGTERM handler (`workers.shutdown`) set it from wherever they run."""

    def __init__(self, deadline: datetime) -> None:
        self.deadline = deadline
        self.lost = threading.Event()  # another attempt holds the job now
        self.cancelled = threading.Event()
        self.expired = threading.Event()

    def check_deadline(self) -> None:
        if utcnow() >= self.deadline:
            self.expired.set()

    @property
    def reason(self) -> StopReason | None:
        if self.lost.is_set():
            return "lost"
        if self.cancelled.is_set():
            return "cancelled"
        if self.expired.is_set():
            return "expired"
        if shutdown.requested.is_set():
            return "hand_back"
        return None


class Heartbeat(threading.Thread):
    """Marks the attempt alive every `interval` seconds; notices a cancel request, a job taken
    over by another attempt, and the time limit."""

    def __init__(self, attempt: Attempt, stop: Stop, interval: float) -> None:
        super().__init__(name=f"heartbeat-{attempt.job_id}", daemon=True)
        self.attempt, self.stop_reasons, self.interval = attempt, stop, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        # A thread starts with no job context of its own: its records carry the job id too.
        with logs.job_context(self.attempt.job_id):
            while not self._stop_event.wait(self.interval):
                try:
                    self.beat()
                except Exception:  # a database blip must not end the heartbeat for good
                    log.exception("heartbeat for job %s failed", self.attempt.job_id)

    def beat(self) -> None:
        with session_scope() as session:
            if not leases.touch(session, self.attempt):
                self.stop_reasons.lost.set()
            elif leases.cancel_requested(session, self.attempt.job_id):
                self.stop_reasons.cancelled.set()
        self.stop_reasons.check_deadline()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 5)


class EpochRecorder(keras.callbacks.Callback):
    """Writes each epoch's logs to the history table and the job's progress; stops the fit at the
    epoch boundary when `stop` has a reason, and remembers which."""

    def __init__(self, attempt: Attempt, stop: Stop, epochs: int) -> None:
        super().__init__()
        self.attempt, self.stop, self.epochs = attempt, stop, epochs
        self.stopped_for: StopReason | None = None
        self._started = time.perf_counter()
        self.write_seconds = 0.0  # spent writing epochs to the database (the job's timings)
        self.first_epoch_seconds = 0.0  # this attempt's first epoch, its writes excluded
        # More rows for an epoch, written in the same transaction as its history row (so they
        # cost no commit of their own): workers.diagnostics.Diagnostics.write.
        self.also_write: list[Callable[[Session, int], None]] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        seconds = time.perf_counter() - self._started
        if not self.first_epoch_seconds:
            self.first_epoch_seconds = seconds
        with session_scope() as session:
            if not leases.record_epoch(session, self.attempt, epoch + 1, metrics, seconds):
                self.stop.lost.set()
            elif leases.cancel_requested(session, self.attempt.job_id):
                self.stop.cancelled.set()
            if not self.stop.lost.is_set():
                for write in self.also_write:
                    write(session, epoch + 1)
        self.write_seconds += time.perf_counter() - self._started - seconds
        self.stop.check_deadline()
        reason = self.stop.reason
        if reason == "hand_back" and epoch + 1 == self.epochs:
            reason = None  # training is done: finishing the job beats handing it back
        if reason is not None:
            self.stopped_for = reason
            self.model.stop_training = True


class Checkpoint(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore in the job's checkpoint folder, written at an epoch end at most every
    `interval` seconds, and always when the job is about to be handed back.

    Keras overwrites one weights file in place; a worker killed mid-save would leave it torn. Here
    each save writes `epoch-<n>.weights.h5` and then commits by atomically replacing
    `training_metadata.json`, which names the epoch, so the last committed checkpoint stays whole.
    Restoring (model and optimizer state, then fit's initial epoch) is Keras' own.

    `folder` is local (`storage.checkpoint_folder`); each file is also written to the artifact
    store, weights first and the metadata last, so a job resumed on another machine finds it.
    """

    # It acts at epoch ends only. Without this, Keras sees the inherited batch hook and turns off
    # its asynchronous dispatch of batch hooks (converting every batch's logs in the training loop).
    async_safe = True

    def __init__(self, job_id: str, folder: Path, interval: float, stop: Stop) -> None:
        super().__init__(backup_dir=str(folder), save_freq="epoch", delete_checkpoint=False)
        self.job_id, self.folder, self.interval, self.stop = job_id, folder, interval, stop
        self._metadata = Path(self._training_metadata_path)
        self._saved_at = time.monotonic()
        self._save_seconds = 0.0

    def _weights(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch}.weights.h5"

    def saved_epoch(self) -> int:
        """The last epoch a committed checkpoint holds; 0 when there is none."""
        try:
            epoch = int(json.loads(self._metadata.read_text())["epoch"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0
        return epoch if self._weights(epoch).is_file() else 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        epoch = self.saved_epoch()
        if epoch:
            self._weights_path = str(self._weights(epoch))  # what Keras then loads
        else:
            self._metadata.unlink(missing_ok=True)
        super().on_train_begin(logs)
        self._saved_at = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stop.lost.is_set():
            return  # the folder belongs to the attempt that holds the job now
        spacing = max(self.interval, SAVE_COST_FACTOR * self._save_seconds)
        if self.stop.reason == "hand_back" or time.monotonic() - self._saved_at >= spacing:
            try:
                self._commit(epoch + 1)
            # Training goes on (a disk or store error); a crash would resume from an older one.
            except Exception:
                log.exception("could not checkpoint epoch %d in %s", epoch + 1, self.folder)

    def _commit(self, epoch: int) -> None:
        started = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = self._weights(epoch)
        self.model.save_weights(str(weights), overwrite=True)
        staging = self._metadata.with_name(self._metadata.name + ".part")
        staging.write_text(json.dumps({"epoch": epoch, "batch": 0}))
        os.replace(staging, self._metadata)
        for written in (weights, self._metadata):  # nothing to do where the store is this folder
            storage.upload(written, storage.checkpoint_key(self.job_id, written.name))
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink(missing_ok=True)
                storage.delete(storage.checkpoint_key(self.job_id, old.name))
        self._save_seconds = time.perf_counter() - started
        self._saved_at = time.monotonic()
