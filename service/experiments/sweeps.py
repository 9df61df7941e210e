"""Sweeps: a grid or random search over fields of a job request. Each trial is an ordinary job
(`sweep_id`), so the workers run them in parallel like any others; the sweep ranks them by one
metric, and the best trial's model serves predictions like any model.

Fields are addressed by dotted paths into the job request: `training.optimizer.learning_rate`,
`network.layers[*].units` (every layer that has `units`), `network.layers[0].activation`, or
`network.layers` itself with whole layer lists as values (to vary the layer count).
"""

import copy
import itertools
import math
import random
import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import datasets, jobs
from service.core.config import get_settings
from service.core.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from service.core.orm import ACTIVE_STATUSES, FINAL_STATUSES, Job, JobStatus, Sweep
from service.experiments import repeats
from service.keys import Principal
from service.schemas.jobs import JobCreate
from service.schemas.sweeps import Range, SweepCreate, SweepRead, TrialRead

RANDOM_TRIALS = 10  # random search without max_trials
_STEP = re.compile(r"([a-z_][a-z0-9_]*)((?:\[(?:\*|\d+)\])*)")
_INDEX = re.compile(r"\[(\*|\d+)\]")
_MAXIMIZED = ("accuracy", "auc", "precision", "recall", "r2")


# --- paths ----------------------------------------------------------------------------------


def _steps(path: str) -> list[str | int]:
    """`network.layers[*].units` -> ["network", "layers", "*", "units"]; 422 if malformed."""
    steps: list[str | int] = []
    for part in path.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise InvalidInput(
                f"'{path}' is not a field path: use dotted field names with [*] or [n] for "
                "list items, e.g. network.layers[*].units or training.optimizer.learning_rate",
                field=f"/parameters/{path}",
            )
        steps.append(match.group(1))
        for index in _INDEX.findall(match.group(2)):
            steps.append("*" if index == "*" else int(index))
    return steps


def _assign(node: Any, steps: list[str | int], value: Any, at: str) -> list[str]:
    """Set `value` wherever `steps` lead in `node`; the JSON pointers it set (none: no match)."""
    step, rest = steps[0], steps[1:]
    if step == "*":
        if not isinstance(node, list):
            return []
        keys: list[str | int] = list(range(len(node)))
    elif isinstance(step, int):
        keys = [step] if isinstance(node, list) and step < len(node) else []
    else:
        keys = [step] if isinstance(node, dict) and step in node else []
    touched: list[str] = []
    for key in keys:
        pointer = f"{at}/{key}"
        if rest:
            touched += _assign(node[key], rest, value, pointer)
        else:
            node[key] = copy.deepcopy(value)
            touched.append(pointer)
    return touched


# --- trials ---------------------------------------------------------------------------------


def _combinations(request: SweepCreate) -> list[dict[str, Any]]:
    cap = get_settings().max_sweep_trials
    if request.max_trials is not None and request.max_trials > cap:
        raise InvalidInput(
            f"max_trials is {request.max_trials}; at most {cap} (DENDRITE_MAX_SWEEP_TRIALS)",
            field="/max_trials",
        )
    for path, values in request.parameters.items():
        if isinstance(values, list) and not values:
            raise InvalidInput("give at least one value", field=f"/parameters/{path}")
    if request.search == "grid":
        for path, values in request.parameters.items():
            if isinstance(values, Range):
                raise InvalidInput(
                    "a grid takes a list of values; ranges are for search 'random'",
                    field=f"/parameters/{path}",
                )
        lists = [values for values in request.parameters.values() if isinstance(values, list)]
        count = math.prod(len(values) for values in lists)
        ceiling = request.max_trials or cap
        if count > ceiling:
            raise InvalidInput(
                f"the grid has {count} combinations, more than {ceiling} trials (max_trials, "
                f"or DENDRITE_MAX_SWEEP_TRIALS); list fewer values or use search 'random'",
                field="/parameters",
            )
        names = list(request.parameters)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    draws = random.Random(request.seed)
    return [
        {path: _draw(draws, values) for path, values in request.parameters.items()}
        for _ in range(request.max_trials or RANDOM_TRIALS)
    ]


def _draw(draws: random.Random, values: list[Any] | Range) -> Any:
    if isinstance(values, list):
        return draws.choice(values)
    if values.log:
        value = math.exp(draws.uniform(math.log(values.min), math.log(values.max)))
    else:
        value = draws.uniform(values.min, values.max)
    return round(value) if values.integer else value


def _trial_request(base: dict[str, Any], parameters: dict[str, Any]) -> JobCreate:
    body = copy.deepcopy(base)
    touched: dict[str, list[str]] = {}
    for path, value in parameters.items():
        touched[path] = _assign(body, _steps(path), value, "")
        if not touched[path]:
            raise InvalidInput(
                f"'{path}' matches no field of the base request (fields are named as in the "
                "job request; [*] skips list items that lack the field)",
                field=f"/parameters/{path}",
            )
    try:
        return JobCreate.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        pointer = _pointer(first["loc"], body)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(
            f"trial {parameters}: {message}", field=_blame(pointer, touched)
        ) from None


def _pointer(location: tuple[Any, ...], body: Any) -> str:
    """A pydantic location as a JSON pointer into `body` (union tags dropped)."""
    parts: list[str] = []
    node = body
    for part in location:
        if isinstance(node, dict) and part not in node:
            continue
        parts.append(str(part))
        node = node[part] if isinstance(node, dict | list) else None
    return "/" + "/".join(parts)


def _blame(pointer: str, touched: dict[str, list[str]]) -> str:
    """The swept parameter that set the field at fault, else the field in the base request."""
    for path, pointers in touched.items():
        if any(pointer == p or pointer.startswith(p + "/") for p in pointers):
            return f"/parameters/{path}"
    return f"/base{pointer}"


def _default_metric(base: JobCreate) -> str:
    if base.training.validation_split > 0:
        return "val_loss"
    return "test_loss" if base.training.test_split > 0 else "loss"


def _check_metric(metric: str, job: Job, has_test: bool) -> None:
    training = job.request["training"]
    names = ["loss", *training["metrics"]]
    allowed = list(names)
    if training["validation_split"] > 0:
        allowed += [f"val_{name}" for name in names]
    if has_test:
        allowed += [f"test_{name}" for name in names]
    if metric not in allowed:
        raise InvalidInput(
            f"metric '{metric}' is not one these trials report; choose one of: "
            f"{', '.join(allowed)}",
            field="/metric",
        )


# --- use cases ------------------------------------------------------------------------------


def create(session: Session, principal: Principal, request: SweepCreate) -> Sweep:
    """Check every trial, then submit them all as jobs (none if any is invalid)."""
    if request.base.repeats > 1:
        raise InvalidInput("a sweep's trials cannot be repeated jobs", field="/base/repeats")
    dataset = datasets.get(session, principal, request.base.dataset_id)
    base = request.base.model_copy(deep=True)
    base.dataset_id = dataset.id
    if base.training.seed is None:  # every trial trains from the same seed: a fair comparison
        base.training.seed = random.randrange(2**31)
    base_body = base.model_dump(mode="json")
    trials = [(params, _trial_request(base_body, params)) for params in _combinations(request)]
    _check_room(session, principal.owner, len(trials))
    metric = request.metric or _default_metric(base)
    direction = request.direction or ("max" if metric.endswith(_MAXIMIZED) else "min")
    sweep = Sweep(
        owner=principal.owner,
        request=request.model_copy(update={"base": base}).model_dump(mode="json"),
        metric=metric,
        direction=direction,
    )
    session.add(sweep)
    session.flush()
    for number, (params, trial) in enumerate(trials):
        job = jobs.submit(session, principal, trial)
        if number == 0:
            _check_metric(metric, job, repeats.has_test_set(trial, dataset))
        job.sweep_id, job.sweep_trial, job.sweep_params = sweep.id, number, params
    session.flush()
    return sweep


def _check_room(session: Session, owner: str, trials: int) -> None:
    limit = get_settings().max_active_jobs_per_owner
    active = jobs.active_jobs(session, owner)
    if active + trials > limit:
        raise TooManyRequests(
            f"this sweep's {trials} trials and your {active} queued or running jobs exceed the "
            f"{limit} one owner may have (DENDRITE_MAX_ACTIVE_JOBS_PER_OWNER); ask for fewer "
            "trials (max_trials) or wait until some jobs end",
            retry_after=jobs.RETRY_AFTER_SECONDS,
        )


def get(session: Session, principal: Principal, sweep_id: str) -> Sweep:
    """A sweep by id; another owner's answers exactly as a missing one does."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or not principal.can_see(sweep.owner):
        raise NotFound(f"sweep '{sweep_id}' does not exist", field="sweep_id")
    return sweep


def page(
    session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[Sweep], int]:
    query = select(Sweep).where(principal.visible(Sweep.owner))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset)
    ).all()
    return list(items), total


def cancel(session: Session, principal: Principal, sweep_id: str) -> Sweep:
    """Cancel every trial still queued or running."""
    sweep = get(session, principal, sweep_id)
    active = [trial for trial in sweep.trials if trial.status in ACTIVE_STATUSES]
    if not active:
        raise Conflict(f"sweep '{sweep_id}' already ended; there is nothing to cancel")
    sweep.cancel_requested = True
    for trial in active:
        jobs.cancel(session, principal, trial.id)
    session.flush()
    return sweep


def _status(sweep: Sweep) -> str:
    statuses = [trial.status for trial in sweep.trials]
    if all(status in FINAL_STATUSES for status in statuses):
        if sweep.cancel_requested:
            return JobStatus.cancelled
        return JobStatus.succeeded if JobStatus.succeeded in statuses else JobStatus.failed
    return JobStatus.queued if all(s == JobStatus.queued for s in statuses) else JobStatus.running


def _value(metric: str, job: Job) -> float | None:
    if job.status != JobStatus.succeeded:
        return None
    if metric.startswith("test_"):
        source = job.model.test_metrics if job.model is not None else None
        metric = metric.removeprefix("test_")
    else:
        source = job.latest_metrics
    value = (source or {}).get(metric)
    return float(value) if value is not None and math.isfinite(value) else None


def to_read(sweep: Sweep) -> SweepRead:
    rows = [
        TrialRead(
            rank=None,
            trial=trial.sweep_trial or 0,
            job_id=trial.id,
            status=JobStatus(trial.status).value,
            parameters=trial.sweep_params or {},
            value=_value(sweep.metric, trial),
            model_id=trial.model.id if trial.model is not None else None,
            latest_metrics=trial.latest_metrics,
            test_metrics=trial.model.test_metrics if trial.model is not None else None,
            error=trial.error,
        )
        for trial in sweep.trials
    ]
    sign = 1.0 if sweep.direction == "min" else -1.0
    ranked = sorted(
        (row for row in rows if row.value is not None), key=lambda row: sign * (row.value or 0.0)
    )
    for rank, row in enumerate(ranked, start=1):
        row.rank = rank
    unranked = [row for row in rows if row.value is None]
    return SweepRead(
        id=sweep.id,
        status=_status(sweep),
        search=sweep.request["search"],
        metric=sweep.metric,
        direction=sweep.direction,
        trials=ranked + unranked,
        best=ranked[0] if ranked else None,
        created_at=sweep.created_at,
        request=sweep.request,
    )
