"""Model use cases: read trained models and answer predictions from them."""

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import storage
from service.errors import Conflict, NotFound
from service.keys import Principal
from service.orm import Job, JobStatus, Model
from service.schemas import ModelRead


def get(session: Session, principal: Principal, model_id: str) -> Model:
    """A model by id; another owner's model (or job) answers exactly as a missing one does."""
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


def predict(
    session: Session, principal: Principal, model_id: str, instances: list[Any]
) -> list[Any]:
    # Look the model up before the import: an unknown id needs no TensorFlow.
    model = get(session, principal, model_id)
    from service.ml import inference  # loads TensorFlow on first use, not at API start

    return inference.predict(model.storage_key, model.input_schema, model.outputs, instances)


def file_path(session: Session, principal: Principal, model_id: str) -> Path:
    return storage.path(get(session, principal, model_id).storage_key)


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
