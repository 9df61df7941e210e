"""Model use cases: read trained models and answer predictions from them."""

from collections.abc import Iterable
from functools import partial
from typing import IO, Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import registry
from service.core import storage
from service.core.after_commit import after_commit
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import Conflict, NotFound
from service.core.orm import Job, JobStatus, Model
from service.core.recent import Recent
from service.keys import Principal
from service.schemas.inspection import ForwardResponse, LayerOutput, LayerWeights, WeightsResponse
from service.schemas.models import ModelRead


def get(session: Session, principal: Principal, model_id: str) -> Model:
    """A model by id, or by `name@alias` / `name/versions/n` among the caller's registered models
    (`service.registry`); another owner's model (or job) answers exactly as a missing one does."""
    if registry.is_reference(model_id):
        return registry.resolve(session, principal, model_id)
    model = session.get(Model, model_id)
    if model is not None and principal.can_see(model.owner):
        return model
    job = session.get(Job, model_id)
    if job is not None and principal.can_see(job.owner):
        # A common slip: a job id where a model id belongs. Say what the job's state is.
        if job.status == JobStatus.succeeded and job.model is not None:
            raise NotFound(
                f"'{model_id}' is a job, not a model; its model is '{job.model.id}'",
                field="model_id",
            )
        reason = f": {job.error}" if job.error else ""
        raise Conflict(
            f"'{model_id}' is a job that is {job.status}{reason}; only a succeeded job has a model",
            field="model_id",
        )
    raise NotFound(f"model '{model_id}' does not exist", field="model_id")


def page(
    session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[Model], int]:
    visible = principal.visible(Model.owner)
    total = session.scalar(select(func.count()).select_from(Model).where(visible)) or 0
    query = select(Model).where(visible).order_by(Model.created_at.desc(), Model.id)
    items = session.scalars(query.limit(limit).offset(offset)).all()
    return list(items), total


class Served(NamedTuple):
    """What a prediction needs of a model's row."""

    owner: str
    storage_key: str
    input_schema: dict[str, Any]
    outputs: dict[str, Any]


# A model never changes once saved, so a prediction skips the database for a model looked up a
# moment ago; only a deletion reaches it later. How stale it may be: `service.core.recent`.
# A reference (`name@alias`) is remembered per owner, and forgotten when an alias moves here.
_recent_models: Recent[str, Served] = Recent(maxsize=1024)
registry.watch(_recent_models.clear)


def _cache_key(principal: Principal, model_id: str) -> str:
    return f"{principal.owner}\x00{model_id}" if registry.is_reference(model_id) else model_id


def served(principal: Principal, model_id: str) -> Served:
    """The row a prediction needs: its own short unit of work, or none for a model looked up a
    moment ago."""
    key = _cache_key(principal, model_id)
    found = _recent_models.get(key)
    if found is None or not principal.can_see(found.owner):
        with session_scope() as session:
            model = get(session, principal, model_id)
            found = Served(model.owner, model.storage_key, model.input_schema, model.outputs)
        _recent_models.put(key, found)
    return found


def predict(principal: Principal, model_id: str, instances: list[Any]) -> list[Any]:
    """The model's predictions for `instances`."""
    found = served(principal, model_id)  # an unknown id needs no TensorFlow
    from service.ml import inference  # loads TensorFlow on first use, not at API start

    return inference.predict(found.storage_key, found.input_schema, found.outputs, instances)


def forget(session: Session, model_ids: Iterable[str]) -> None:
    """Models deleted in the session's transaction: once it commits, predictions in this process
    stop answering from them at once."""
    for model_id in model_ids:
        after_commit(session, partial(_recent_models.forget, model_id))


def open_file(session: Session, principal: Principal, model_id: str) -> tuple[IO[bytes], int]:
    """The model's `.keras` file, open for streaming from the artifact store, and its size."""
    return storage.open_read(get(session, principal, model_id).storage_key)


def forward(
    session: Session, principal: Principal, model_id: str, instance: Any
) -> ForwardResponse:
    """One row through the model, layer by layer: each layer's output, preprocessing included."""
    model = get(session, principal, model_id)
    from service.ml import inspection  # loads TensorFlow on first use, not at API start

    layers = inspection.forward(model.storage_key, model.input_schema, instance)
    return ForwardResponse(model_id=model.id, layers=[LayerOutput(**row) for row in layers])


def weights(session: Session, principal: Principal, model_id: str) -> WeightsResponse:
    """Each layer's weights: shapes and statistics, and values for small arrays."""
    model = get(session, principal, model_id)
    from service.ml import inspection

    return WeightsResponse(
        model_id=model.id,
        max_values=get_settings().inspect_max_values,
        layers=[LayerWeights(**row) for row in inspection.weights(model.storage_key)],
    )


def to_read(model: Model) -> ModelRead:
    return ModelRead(
        id=model.id,
        job_id=model.job_id,
        task=model.task,
        input_schema=model.input_schema,
        outputs=model.outputs,
        test_metrics=model.test_metrics,
        parameters=model.parameters,
        size_bytes=model.size_bytes,
        created_at=model.created_at,
    )
