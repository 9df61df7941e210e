"""The sweeps use case (service/experiments/sweeps.py): trials made from field paths, grid and
random search, ranking by the sweep's metric, cancelling. The HTTP side is in
tests/api/test_sweeps.py; sweeps trained by a real worker in tests/e2e/test_repeats_sweeps.py."""

import copy
from typing import Any

import pytest
from sqlalchemy.orm import Session

from service import keys
from service.core.errors import Conflict, InvalidInput, NotFound
from service.core.orm import JobStatus
from service.experiments import sweeps
from service.schemas import examples
from service.schemas.sweeps import SweepCreate

ALICE = keys.Principal(owner="alice")
BOB = keys.Principal(owner="bob")


@pytest.fixture
def dataset_id(concrete_dataset_id: str) -> str:
    return concrete_dataset_id


def _sweep(dataset_id: str, **changes: Any) -> SweepCreate:
    body = copy.deepcopy(examples.CONCRETE_SWEEP)
    body["base"]["dataset_id"] = dataset_id
    body["base"]["network"]["layers"].append({"type": "dense", "units": 10})
    body.update(changes)
    return SweepCreate.model_validate(body)


def test_a_grid_makes_one_job_per_combination_with_its_values_applied(
    session: Session, dataset_id: str
) -> None:
    sweep = sweeps.create(session, ALICE, _sweep(dataset_id))
    session.commit()

    trials = sorted(sweep.trials, key=lambda job: job.sweep_trial or 0)
    assert len(trials) == 4
    seeds = {job.request["training"]["seed"] for job in trials}
    assert seeds == {42}  # every trial from the same seed: a fair comparison
    for job in trials:
        units = job.sweep_params["network.layers[*].units"]
        assert [layer["units"] for layer in job.request["network"]["layers"]] == [units, units]
        rate = job.request["training"]["optimizer"]["learning_rate"]
        assert rate == job.sweep_params["training.optimizer.learning_rate"]
        assert job.status == JobStatus.queued and job.owner == "alice"


def test_random_search_draws_reproducibly_within_its_ranges(
    session: Session, dataset_id: str
) -> None:
    parameters = {
        "training.optimizer.learning_rate": {"min": 1e-4, "max": 1e-1, "log": True},
        "network.layers[0].units": {"min": 4, "max": 64, "integer": True},
    }
    request = _sweep(
        dataset_id, search="random", parameters=parameters, max_trials=5, seed=7, metric=None
    )

    first = sweeps.create(session, ALICE, request)
    second = sweeps.create(session, ALICE, request)

    drawn = [job.sweep_params for job in sorted(first.trials, key=lambda j: j.sweep_trial or 0)]
    again = [job.sweep_params for job in sorted(second.trials, key=lambda j: j.sweep_trial or 0)]
    assert drawn == again and len(drawn) == 5
    for params in drawn:
        assert 1e-4 <= params["training.optimizer.learning_rate"] <= 1e-1
        assert isinstance(params["network.layers[0].units"], int)
        assert 4 <= params["network.layers[0].units"] <= 64


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"training.nothing_here": [1, 2]}, "/parameters/training.nothing_here"),
        ({"network.layers[5].units": [1, 2]}, "/parameters/network.layers[5].units"),
        ({"Training..epochs": [1]}, "/parameters/Training..epochs"),
        ({"training.epochs": []}, "/parameters/training.epochs"),
    ],
)
def test_a_path_that_cannot_apply_is_refused_naming_it(
    session: Session, dataset_id: str, parameters: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        sweeps.create(session, ALICE, _sweep(dataset_id, parameters=parameters))

    assert refused.value.field == field


def test_a_grid_larger_than_its_ceiling_is_refused(session: Session, dataset_id: str) -> None:
    parameters = {"training.epochs": [1, 2, 3], "training.batch_size": [8, 16, 32]}

    with pytest.raises(InvalidInput, match="9 combinations"):
        sweeps.create(session, ALICE, _sweep(dataset_id, parameters=parameters, max_trials=8))


def test_trials_are_ranked_by_the_metric_best_first(session: Session, dataset_id: str) -> None:
    sweep = sweeps.create(session, ALICE, _sweep(dataset_id))
    trials = sorted(sweep.trials, key=lambda job: job.sweep_trial or 0)
    for job, loss in zip(trials[:3], (30.0, 10.0, 20.0), strict=True):
        job.status = JobStatus.succeeded
        job.latest_metrics = {"val_loss": loss, "loss": loss}
    trials[3].status = JobStatus.failed
    session.flush()

    read = sweeps.to_read(sweep)

    assert [row.value for row in read.trials] == [10.0, 20.0, 30.0, None]
    assert [row.rank for row in read.trials] == [1, 2, 3, None]
    assert read.best is not None and read.best.job_id == trials[1].id
    assert read.status == JobStatus.succeeded


def test_cancel_stops_every_active_trial_once(session: Session, dataset_id: str) -> None:
    sweep = sweeps.create(session, ALICE, _sweep(dataset_id))
    session.commit()

    with pytest.raises(NotFound):
        sweeps.cancel(session, BOB, sweep.id)
    cancelled = sweeps.cancel(session, ALICE, sweep.id)

    assert {job.status for job in cancelled.trials} == {JobStatus.cancelled}
    assert sweeps.to_read(cancelled).status == JobStatus.cancelled
    with pytest.raises(Conflict, match="already ended"):
        sweeps.cancel(session, ALICE, sweep.id)
