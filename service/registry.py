"""Registered models: a name per line of models, numbered versions, aliases that point at a version
(every move recorded), and model references that resolve through them.

A reference is a model id, `name@alias` or `name/versions/n`; names are per owner, so a reference
resolves among the caller's own registered models. What an alias points at may change at any time:
predictions remember a resolved reference for at most `service.core.recent.WINDOW_SECONDS` in other
API processes, and not at all in the process that moved it (its cache entries are dropped when the
move commits).
"""

import re
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.after_commit import after_commit
from service.core.errors import Conflict, InvalidInput, NotFound
from service.core.orm import (
    AliasMove,
    Job,
    Model,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    utcnow,
)
from service.keys import Principal
from service.schemas.registry import (
    AliasMoveRead,
    RegisteredModelRead,
    VersionRead,
)

_REFERENCE = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/versions/(?P<version>\d+))$")

# Called once a move commits: references may now resolve elsewhere (`service.models` drops the
# lookups it remembered).
_moved: list[Callable[[], None]] = []


def is_reference(model_ref: str) -> bool:
    """Whether `model_ref` names a registered model's version (not a model id)."""
    return _REFERENCE.match(model_ref) is not None


def watch(callback: Callable[[], None]) -> None:
    """Call `callback` whenever an alias moves or a version is added in this process, once the
    change commits."""
    _moved.append(callback)


def _changed(session: Session) -> None:
    for callback in _moved:
        after_commit(session, callback)


def _named(session: Session, principal: Principal, name: str) -> RegisteredModel:
    found = session.scalar(
        select(RegisteredModel).where(
            RegisteredModel.owner == principal.owner, RegisteredModel.name == name
        )
    )
    if found is None:
        raise NotFound(f"registered model '{name}' does not exist", field="name")
    return found


def _version(session: Session, registered: RegisteredModel, number: int) -> ModelVersion:
    found = session.scalar(
        select(ModelVersion).where(
            ModelVersion.registered_model_id == registered.id, ModelVersion.version == number
        )
    )
    if found is None:
        latest = _latest(session, registered)
        has = f"its versions are 1 to {latest}" if latest else "it has no versions yet"
        raise NotFound(
            f"registered model '{registered.name}' has no version {number}; {has}",
            field="version",
        )
    return found


def _latest(session: Session, registered: RegisteredModel) -> int:
    return int(
        session.scalar(
            select(func.max(ModelVersion.version)).where(
                ModelVersion.registered_model_id == registered.id
            )
        )
        or 0
    )


def resolve(session: Session, principal: Principal, model_ref: str) -> Model:
    """The model `name@alias` or `name/versions/n` points at now, among the caller's names."""
    match = _REFERENCE.match(model_ref)
    if match is None:
        raise InvalidInput(
            f"'{model_ref}' is not a model reference: use a model id, name@alias or "
            "name/versions/n",
            field="model_id",
        )
    registered = _named(session, principal, match["name"])
    if match["alias"] is not None:
        alias = session.get(ModelAlias, (registered.id, match["alias"]))
        if alias is None:
            known = ", ".join(a.alias for a in registered.aliases) or "none"
            raise NotFound(
                f"registered model '{registered.name}' has no alias '{match['alias']}' "
                f"(its aliases: {known})",
                field="model_id",
            )
        return alias.version.model
    return _version(session, registered, int(match["version"])).model


def create(
    session: Session, principal: Principal, name: str, description: str | None
) -> RegisteredModel:
    registered = RegisteredModel(owner=principal.owner, name=name, description=description)
    try:
        with session.begin_nested():  # a lost race undoes this insert alone
            session.add(registered)
    except IntegrityError:
        raise Conflict(f"a registered model named '{name}' exists already", field="name") from None
    return registered


def ensure(session: Session, principal: Principal, name: str) -> RegisteredModel:
    """The caller's registered model `name`, created if there is none."""
    found = session.scalar(
        select(RegisteredModel).where(
            RegisteredModel.owner == principal.owner, RegisteredModel.name == name
        )
    )
    return found if found is not None else create(session, principal, name, None)


def get(session: Session, principal: Principal, name: str) -> RegisteredModel:
    return _named(session, principal, name)


def page(
    session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[RegisteredModel], int]:
    mine = RegisteredModel.owner == principal.owner
    total = session.scalar(select(func.count()).select_from(RegisteredModel).where(mine)) or 0
    query = select(RegisteredModel).where(mine).order_by(RegisteredModel.name)
    return list(session.scalars(query.limit(limit).offset(offset))), total


def add_version(session: Session, principal: Principal, name: str, model_id: str) -> ModelVersion:
    """The next version of `name`: the model `model_id` (one of the caller's), with its lineage."""
    registered = _named(session, principal, name)
    model = session.get(Model, model_id)
    if model is None or model.owner != registered.owner:
        raise NotFound(f"model '{model_id}' does not exist", field="model_id")
    version = ModelVersion(
        registered_model_id=registered.id,
        version=_latest(session, registered) + 1,
        model_id=model.id,
        lineage=lineage(model),
        created_by=principal.owner,
    )
    try:
        with session.begin_nested():  # another request took that number first: undo this alone
            session.add(version)
    except IntegrityError:
        raise Conflict(
            f"another version of '{name}' was added at the same moment; send the request again",
            field="model_id",
        ) from None
    _changed(session)  # the latest version serves a name without a production alias
    return version


def lineage(model: Model) -> dict[str, object]:
    """Where a model came from, as registered with a version."""
    job: Job = model.job
    dataset = job.dataset
    training = job.request.get("training", {})
    seconds = (
        (job.finished_at - job.started_at).total_seconds()
        if job.finished_at and job.started_at
        else None
    )
    return {
        "dataset": {"id": dataset.id, "name": dataset.name, "sha256": dataset.sha256},
        "job_id": job.id,
        "request": job.request,
        "seed": training.get("seed"),
        "split": {
            "validation": training.get("validation_split"),
            "test": training.get("test_split"),
        },
        "epochs": job.epoch,
        "final_metrics": job.latest_metrics,
        "test_metrics": model.test_metrics,
        "training_seconds": seconds,
        "trained_with": model.trained_with,
    }


def version(session: Session, principal: Principal, name: str, number: int) -> ModelVersion:
    return _version(session, _named(session, principal, name), number)


def set_alias(
    session: Session, principal: Principal, name: str, alias: str, number: int
) -> ModelVersion:
    """Point `alias` at version `number` (recorded as a move); the version it now points at."""
    registered = _named(session, principal, name)
    target = _version(session, registered, number)
    current = session.get(ModelAlias, (registered.id, alias))
    before = current.version.version if current is not None else None
    if current is None:
        session.add(ModelAlias(registered_model_id=registered.id, alias=alias, version=target))
    else:
        current.version = target
        current.updated_at = utcnow()
    if before != number:
        session.add(
            AliasMove(
                registered_model_id=registered.id,
                alias=alias,
                from_version=before,
                to_version=number,
                moved_by=principal.owner,
            )
        )
    _changed(session)
    return target


def delete_alias(session: Session, principal: Principal, name: str, alias: str) -> None:
    registered = _named(session, principal, name)
    current = session.get(ModelAlias, (registered.id, alias))
    if current is None:
        raise NotFound(f"registered model '{name}' has no alias '{alias}'", field="alias")
    session.add(
        AliasMove(
            registered_model_id=registered.id,
            alias=alias,
            from_version=current.version.version,
            to_version=None,
            moved_by=principal.owner,
        )
    )
    session.delete(current)
    _changed(session)


def moves(session: Session, principal: Principal, name: str) -> list[AliasMove]:
    registered = _named(session, principal, name)
    query = (
        select(AliasMove)
        .where(AliasMove.registered_model_id == registered.id)
        .order_by(AliasMove.id)
    )
    return list(session.scalars(query))


def versions_of(session: Session, model_ids: list[str]) -> list[str]:
    """`name/versions/n` of every version that uses one of the models (what a deletion takes)."""
    rows = session.execute(
        select(RegisteredModel.name, ModelVersion.version)
        .join(RegisteredModel)
        .where(ModelVersion.model_id.in_(model_ids))
        .order_by(RegisteredModel.name, ModelVersion.version)
    )
    return [f"{name}/versions/{number}" for name, number in rows]


def to_read(session: Session, registered: RegisteredModel) -> RegisteredModelRead:
    return RegisteredModelRead(
        name=registered.name,
        description=registered.description,
        created_at=registered.created_at,
        latest_version=_latest(session, registered) or None,
        aliases={a.alias: a.version.version for a in registered.aliases},
    )


def version_to_read(registered: RegisteredModel, version: ModelVersion) -> VersionRead:
    return VersionRead(
        name=registered.name,
        version=version.version,
        model_id=version.model_id,
        aliases=[a.alias for a in registered.aliases if a.version_id == version.id],
        created_by=version.created_by,
        created_at=version.created_at,
        lineage=version.lineage,
    )


def move_to_read(move: AliasMove) -> AliasMoveRead:
    return AliasMoveRead(
        alias=move.alias,
        from_version=move.from_version,
        to_version=move.to_version,
        moved_by=move.moved_by,
        moved_at=move.moved_at,
    )
