"""Prometheus metrics about jobs, read from the database and the broker at each scrape: every API
replica reports the same numbers, whichever replica took a job and whichever worker trained it.
(Request latency, which each process measures itself, is in `service.api.prometheus`.)

A scrape stays cheap however long the history: jobs by status and the running jobs' epochs are
small indexed reads, and the training-time histogram is kept as jobs succeed (each scrape reads
only the jobs that succeeded since the last one, and their epochs), not re-aggregated from the
whole epoch table every time.
"""

import bisect
import logging
import math
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core import queue
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.orm import EpochMetric, Job, JobStatus

log = logging.getLogger(__name__)

# Training times span seconds (a small table) to hours (images); the limit is 6 h by default.
TRAINING_SECONDS_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600)

REGISTRY = CollectorRegistry()


class JobCollector(Collector):
    """Jobs by status, queue depth, training time of succeeded jobs, epochs per second now."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dendrite_dependency_up",
            "Whether the last scrape could read the database or the broker (1) or not (0).",
            labels=["dependency"],
        )
        try:
            with session_scope() as session:
                families = [
                    _jobs_by_status(session),
                    _training_seconds(session),
                    _epochs_per_second(session),
                ]
        except Exception:  # the scrape still answers, with what it could read
            log.exception("metrics: could not read jobs from the database")
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield from families
        depth = _queue_depth()
        up.add_metric(["broker"], 1 if depth is not None else 0)
        if depth is not None:
            yield depth
        yield up


def _jobs_by_status(session: Session) -> Metric:
    family = GaugeMetricFamily(
        "dendrite_jobs", "Jobs in the database, by status.", labels=["status"]
    )
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = {status: count for status, count in rows}
    for status in JobStatus:
        family.add_metric([status.value], counts.get(status.value, 0))
    return family


# A job that succeeded this long before the newest one seen is still looked for: its transaction
# may have committed after a later job's did.
LATE_COMMIT = timedelta(minutes=5)
IN_CHUNK = 500  # job ids per `IN (...)` when summing epochs


class TrainingSeconds:
    """The histogram of succeeded jobs' training time (the sum of their epochs' seconds, each epoch
    counted once even when the job resumed from a checkpoint), added to as jobs succeed. The first
    scrape of a process reads every succeeded job once; later ones only the new ones."""

    def __init__(self) -> None:
        self.cumulative = [0] * len(TRAINING_SECONDS_BUCKETS)
        self.count = 0
        self.sum = 0.0
        self.counted: dict[str, datetime] = {}  # recent jobs already in, by their finish time
        self.newest: datetime | None = None

    def update(self, session: Session) -> None:
        query = select(Job.id, Job.finished_at).where(Job.status == JobStatus.succeeded)
        if self.newest is not None:
            query = query.where(Job.finished_at >= self.newest - LATE_COMMIT)
        new = {
            job_id: finished
            for job_id, finished in session.execute(query)
            if job_id not in self.counted and finished is not None
        }
        ids = list(new)
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            rows = session.execute(
                select(func.coalesce(func.sum(EpochMetric.seconds), 0.0))
                .where(EpochMetric.job_id.in_(chunk))
                .group_by(EpochMetric.job_id)
            )
            for (seconds,) in rows:
                self._observe(float(seconds))
        if not new:
            return
        self.counted.update(new)
        self.newest = max([*new.values(), *([self.newest] if self.newest else [])])
        oldest_kept = self.newest - LATE_COMMIT
        self.counted = {k: v for k, v in self.counted.items() if v >= oldest_kept}

    def _observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        for index in range(
            bisect.bisect_left(TRAINING_SECONDS_BUCKETS, seconds), len(self.cumulative)
        ):
            self.cumulative[index] += 1

    def family(self) -> Metric:
        buckets = [
            (str(float(bound)), count)
            for bound, count in zip(TRAINING_SECONDS_BUCKETS, self.cumulative, strict=True)
        ]
        return HistogramMetricFamily(
            "dendrite_job_training_seconds",
            "Training time of succeeded jobs (the sum of their epochs' seconds).",
            buckets=[*buckets, ("+Inf", self.count)],
            sum_value=self.sum,
        )


_training: dict[str, TrainingSeconds] = {}  # by database URL
_training_lock = threading.Lock()


def forget_training_seconds() -> None:
    """Start the histogram over (for tests that empty the database)."""
    with _training_lock:
        _training.clear()


def _training_seconds(session: Session) -> Metric:
    with _training_lock:  # two scrapes at once must not count a job twice
        histogram = _training.setdefault(get_settings().sqlalchemy_url, TrainingSeconds())
        histogram.update(session)
        return histogram.family()


def _epochs_per_second(session: Session) -> Metric:
    """Each running job's epochs per second so far (its epochs / their seconds), summed: how fast
    the workers are training right now."""
    rows = session.execute(
        select(func.count(EpochMetric.id), func.sum(EpochMetric.seconds))
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.status == JobStatus.running)
        .group_by(EpochMetric.job_id)
    )
    rate = sum(epochs / seconds for epochs, seconds in rows if seconds and seconds > 0)
    family = GaugeMetricFamily(
        "dendrite_training_epochs_per_second",
        "Epochs per second of the running jobs, summed (each job's epochs over their seconds).",
    )
    family.add_metric([], rate if math.isfinite(rate) else 0.0)
    return family


def _queue_depth() -> Metric | None:
    """Messages waiting in each training queue, or None when the broker does not answer."""
    family = GaugeMetricFamily(
        "dendrite_queue_depth", "Messages waiting in a broker queue.", labels=["queue"]
    )
    try:
        for name in _queue_names():
            family.add_metric([name], queue.waiting(name))
    except Exception:  # noqa: BLE001 - reported as dendrite_dependency_up{dependency="broker"}
        log.warning("metrics: could not read the queue depth from the broker")
        return None
    return family


def _queue_names() -> Iterable[str]:
    return sorted(set(queue.QUEUES.values()))


REGISTRY.register(JobCollector())
