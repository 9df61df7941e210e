"""Gradient diagnostics measured while a job trains, in this process as a worker runs it: the
course's vanishing-gradient lesson, dead and saturated units, and the held-out predictions."""

import copy
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from sqlalchemy.orm import Session

from service import datasets, diagnostics, jobs, keys
from service.core import queue
from service.core.orm import EpochDiagnostic, Job, JobStatus
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from workers.diagnostics import PAIRS_KEPT, unit_share
from workers.tasks import run_job

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def fresh_celery() -> None:
    queue.celery.cache_clear()


def _train(session: Session, layers: list[dict[str, Any]], **training: Any) -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["network"]["layers"] = layers
    body["training"].update(training)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded, job.error
    return job


def _six(activation: str, units: int = 50) -> list[dict[str, Any]]:
    return [{"type": "dense", "units": units, "activation": activation}] * 6


def test_six_sigmoid_layers_vanish_after_epoch_one_and_are_flagged(session: Session) -> None:
    job = _train(session, _six("sigmoid"), epochs=1)

    [epoch] = diagnostics.rows(session, job.id)
    ratio = diagnostics.ratio(epoch.layers)
    assert ratio is not None and 1e-5 < ratio < 1e-3  # the course: about 1e-4
    norms = [layer["gradient_norm"] for layer in epoch.layers]
    assert norms == sorted(norms)  # smaller with every layer further from the output
    assert [flag["kind"] for flag in epoch.flags] == ["vanishing"]
    assert epoch.flags[0]["rule"] == diagnostics.RULES["vanishing"]
    assert epoch.flags[0]["layers"] == ["dense_1", "output"]
    assert all(layer["saturated_fraction"] is not None for layer in epoch.layers[:-1])


def test_six_relu_layers_keep_their_gradient_and_are_not_flagged(session: Session) -> None:
    job = _train(session, _six("relu"), epochs=1)

    [epoch] = diagnostics.rows(session, job.id)
    ratio = diagnostics.ratio(epoch.layers)
    assert ratio is not None and 0.1 < ratio < 2.0  # the course: about 0.5
    assert epoch.flags == []
    assert all(0.0 <= layer["dead_fraction"] < 1.0 for layer in epoch.layers[:-1])


def test_six_relu_layers_killed_by_sgd_are_flagged_dead_not_vanishing(session: Session) -> None:
    # The example's old settings: SGD 0.01 on the raw MPa targets kills every ReLU in epoch 1.
    sgd = {"name": "sgd", "learning_rate": 0.01}
    job = _train(session, _six("relu", units=10), epochs=1, optimizer=sgd, seed=42)

    [epoch] = diagnostics.rows(session, job.id)
    assert [flag["kind"] for flag in epoch.flags] == ["dead"]
    assert epoch.flags[0]["detail"].startswith("every hidden layer is dead")
    assert epoch.flags[0]["rule"] == diagnostics.RULES["dead"]
    assert all(layer["gradient_norm"] == 0.0 for layer in epoch.layers[:-1])
    assert any(layer["dead_fraction"] == 1.0 for layer in epoch.layers[:-1])


def test_regression_keeps_a_sample_of_validation_predictions(session: Session) -> None:
    job = _train(session, [{"type": "dense", "units": 8}], epochs=2, validation_split=0.7)

    assert job.model is not None and job.model.evaluation is not None
    evaluation = job.model.evaluation
    assert evaluation["split"] == "validation" and evaluation["rows"] == round(1030 * 0.7)
    pairs = evaluation["predicted_vs_actual"]["Strength"]
    assert len(pairs["actual"]) == len(pairs["predicted"]) == PAIRS_KEPT
    assert min(pairs["actual"]) >= 2.0 and max(pairs["actual"]) <= 83.0  # the file's range
    assert len(diagnostics.rows(session, job.id)) == 2


def test_convolutional_classifier_has_channel_stats_and_a_confusion_matrix(
    session: Session,
) -> None:
    with open(DATA / "mnist_small.npz", "rb") as handle:
        dataset = datasets.create(
            session, OWNER, handle, "mnist_small.npz", "application/octet-stream", None
        )
    body = copy.deepcopy(examples.MNIST_CLASSIFIER)
    body["dataset_id"] = dataset.id
    body["network"]["layers"] = [
        {"type": "conv2d", "filters": 4, "activation": "tanh"},
        {"type": "max_pooling2d", "pool_size": 4},
        {"type": "flatten"},
        {"type": "dense", "units": 16, "activation": "relu"},
    ]
    body["training"]["epochs"] = 1
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    run_job(job.id)
    session.refresh(job)
    assert job.status == JobStatus.succeeded, job.error

    [epoch] = diagnostics.rows(session, job.id)
    assert [layer["name"] for layer in epoch.layers] == ["conv2d_1", "dense_4", "output"]
    conv, dense, _ = epoch.layers
    assert conv["saturated_fraction"] is not None and conv["dead_fraction"] is None
    assert dense["dead_fraction"] is not None and conv["gradient_norm"] > 0
    assert job.model is not None and job.model.evaluation is not None
    matrix = job.model.evaluation["confusion_matrix"]
    assert job.model.evaluation["split"] == "test"  # the file's x_test/y_test
    assert matrix["labels"] == list(range(10))
    assert sum(map(sum, matrix["counts"])) == 1000
    correct = sum(matrix["counts"][i][i] for i in range(10))
    assert correct / 1000 == pytest.approx(job.model.test_metrics["accuracy"], abs=1e-6)


def test_rows_left_by_an_earlier_attempt_are_replaced(session: Session) -> None:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset.id
    body["training"]["epochs"] = 2
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    for epoch in (1, 7):  # as a lost attempt that trained further would have left them
        session.add(EpochDiagnostic(job_id=job.id, epoch=epoch, layers=[], flags=[]))
    session.commit()

    run_job(job.id)

    session.expire_all()
    rows = diagnostics.rows(session, job.id)
    assert [row.epoch for row in rows] == [1, 2] and all(row.layers for row in rows)


def test_training_without_diagnostics_records_none(session: Session) -> None:
    job = _train(session, [{"type": "dense", "units": 8}], epochs=2, diagnostics=False)

    assert diagnostics.rows(session, job.id) == []
    assert len(job.history) == 2


def testunit_share_counts_dead_relu_and_saturated_sigmoid_units() -> None:
    relu = tf.constant([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    sigmoid = tf.constant(np.array([[0.999, 0.5, 0.001], [0.995, 0.6, 0.2]], dtype="float32"))
    images = tf.zeros((2, 3, 3, 4))  # every channel of a conv layer dead

    assert float(unit_share(relu, "relu")) == 0.5  # units 0 and 2: zero for every sample
    # unit 0 saturated for both samples, unit 2 for half of them only (needs 90 %)
    assert float(unit_share(sigmoid, "sigmoid")) == pytest.approx(1 / 3)
    assert float(unit_share(images, "relu")) == 1.0
    assert float(unit_share(relu, "linear")) == -1.0
