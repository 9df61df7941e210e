"""The training pipeline's public steps, called one by one and through `train`, on a tiny model."""

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from service import datasets, jobs, keys, leases
from service.core import queue, storage
from service.core.orm import Dataset, EpochMetric, Job, JobStatus
from service.ml import artifacts, builder
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers import pipeline
from workers.callbacks import Stop
from workers.timings import Laps

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _request(session: Session, **training: Any) -> tuple[JobCreate, Dataset]:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    session.commit()
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["network"]["layers"] = [{"type": "dense", "units": 4, "activation": "relu"}]
    body["training"] |= {"epochs": 2, **training}
    return JobCreate.model_validate(body), dataset


def test_steps_prepare_build_fit_evaluate_and_save_a_model(session: Session) -> None:
    request, dataset = _request(session, test_split=0.2)

    data = pipeline.prepare(request, dataset)
    loop, _ = pipeline.loop_for(pipeline.build(request, data), request, data)
    history = pipeline.fit(loop, request, data, [])
    test_metrics = pipeline.evaluate(loop, data)
    model = loop.model
    row = pipeline.save(pipeline.Trained(model, data, history, test_metrics, Laps()))

    splits = (data.prepared.train, data.prepared.validation, data.prepared.test)
    assert sum(len(split) for split in splits if split is not None) == 1030  # each row once
    assert history.epoch == [0, 1] and {"loss", "val_loss", "mae"} <= set(history.history)
    assert test_metrics is not None and set(test_metrics) == {"loss", "mae"}
    assert row.test_metrics == test_metrics and row.parameters == 8 * 4 + 4 + 4 + 1
    assert storage.exists(row.storage_key)
    with storage.local_file(row.storage_key) as path:
        loaded = artifacts.load(path)
    assert data.prepared.test is not None and isinstance(data.prepared.test.x, dict)
    rows = builder.model_inputs({name: x[:3] for name, x in data.prepared.test.x.items()})
    assert np.allclose(loaded.predict(rows, verbose=0), model.predict(rows, verbose=0))


def test_evaluate_without_a_test_split_gives_none(session: Session) -> None:
    request, dataset = _request(session, test_split=0.0)
    data = pipeline.prepare(request, dataset)
    loop, _ = pipeline.loop_for(pipeline.build(request, data), request, data)
    assert pipeline.evaluate(loop, data) is None


def _claimed(session: Session, request: JobCreate) -> leases.Attempt:
    job = jobs.submit(session, OWNER, request)
    session.commit()
    attempt = leases.claim(session, job.id, "w1@host")
    session.commit()
    assert attempt is not None
    return attempt


def test_train_records_each_epoch_of_the_attempts_job(session: Session) -> None:
    request, dataset = _request(session, test_split=0.2)
    attempt = _claimed(session, request)

    trained = pipeline.train(attempt, request, dataset, Stop(attempt.deadline))

    rows = session.query(EpochMetric).filter_by(job_id=attempt.job_id).all()
    assert sorted(row.epoch for row in rows) == [1, 2]
    assert trained.test_metrics is not None and trained.history.epoch == [0, 1]
    phases = {"load", "build", "trace", "fit", "first_epoch", "epoch_writes", "evaluate"}
    assert phases <= set(trained.laps.seconds)


def test_a_cancelled_train_stops_at_its_next_call_into_tensorflow(session: Session) -> None:
    request, dataset = _request(session, epochs=5)
    attempt = _claimed(session, request)
    stop = Stop(attempt.deadline)
    stop.cancelled.set()

    with pytest.raises(pipeline.Stopped) as stopped:
        pipeline.train(attempt, request, dataset, stop)

    assert stopped.value.reason == "cancelled"
    rows = session.query(EpochMetric).filter_by(job_id=attempt.job_id).all()
    assert rows == []  # not even the first epoch ran to its end
    assert session.get_one(Job, attempt.job_id).status == JobStatus.running
