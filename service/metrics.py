"""Prometheus metrics about jobs, read from the database and the broker at each scrape: every API
replica reports the same numbers, whichever replica took a job and whichever worker trained it.
(Request latency, which each process measures itself, is in `service.api.metrics`.)"""

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service import queue
from service.db import session_scope
from service.orm import EpochMetric, Job, JobStatus

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


def _training_seconds(session: Session) -> Metric:
    """A histogram of succeeded jobs' training time: the sum of their epochs' seconds (each epoch
    counted once, even when the job resumed from a checkpoint), bucketed in SQL."""
    per_job = (
        select(func.sum(EpochMetric.seconds).label("seconds"))
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.status == JobStatus.succeeded)
        .group_by(EpochMetric.job_id)
        .subquery()
    )
    seconds = per_job.c.seconds
    below = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in TRAINING_SECONDS_BUCKETS]
    row: tuple[Any, ...] = tuple(
        session.execute(select(func.count(), func.sum(seconds), *below)).one()
    )
    total, total_seconds, *cumulative = row  # SUM over no rows is NULL
    buckets = [
        (str(float(bound)), int(count or 0))
        for bound, count in zip(TRAINING_SECONDS_BUCKETS, cumulative, strict=True)
    ]
    return HistogramMetricFamily(
        "dendrite_job_training_seconds",
        "Training time of succeeded jobs (the sum of their epochs' seconds).",
        buckets=[*buckets, ("+Inf", int(total))],
        sum_value=float(total_seconds or 0.0),
    )


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
