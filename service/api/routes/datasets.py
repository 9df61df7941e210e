"""Datasets: upload, list, read, preview, delete."""

from typing import Annotated, Any

from fastapi import File, Form, Query, Response, UploadFile, status

from service import datasets
from service.api.deps import CurrentPrincipal, Limit, Offset, SessionDep, v1_router
from service.schemas.common import ErrorBody, Page
from service.schemas.datasets import DatasetConflict, DatasetPreview, DatasetRead

router = v1_router("/v1/datasets", "datasets")


_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ErrorBody,
        "description": "`payload_too_large`: the file passes DENDRITE_MAX_UPLOAD_BYTES (or, once "
        "read, a row, column or decompression limit); `quota_exceeded`: it does not fit in your "
        "storage quota (DENDRITE_MAX_STORAGE_BYTES_PER_OWNER). Nothing is stored.",
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=_UPLOAD_RESPONSES,
)
def create_dataset(
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    file: Annotated[UploadFile, File(description="A CSV, Parquet or NPZ file.")],
    name: Annotated[str | None, Form(max_length=255, examples=["concrete"])] = None,
) -> DatasetRead:
    """Upload a CSV, Parquet or NPZ file; its schema and column statistics come back."""
    dataset = datasets.create(session, principal, file.file, file.filename, file.content_type, name)
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetRead.model_validate(dataset)


@router.get("", response_model=Page[DatasetRead])
def list_datasets(
    session: SessionDep, principal: CurrentPrincipal, limit: Limit = 50, offset: Offset = 0
) -> Page[DatasetRead]:
    """List your datasets, newest first."""
    items, total = datasets.page(session, principal, limit, offset)
    return Page(
        items=[DatasetRead.model_validate(d) for d in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(session: SessionDep, principal: CurrentPrincipal, dataset_id: str) -> DatasetRead:
    """One dataset (by id or name): format, rows, sha256 and per-column statistics."""
    return DatasetRead.model_validate(datasets.get(session, principal, dataset_id))


@router.get("/{dataset_id}/preview", response_model=DatasetPreview)
def preview_dataset(
    session: SessionDep,
    principal: CurrentPrincipal,
    dataset_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> DatasetPreview:
    """The first rows as JSON records."""
    dataset = datasets.get(session, principal, dataset_id)
    return DatasetPreview(dataset_id=dataset.id, rows=datasets.preview(dataset, limit))


_DELETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Deleted, with its file (and, with `cascade=true`, its dependents)."},
    404: {"model": ErrorBody, "description": "No such dataset (or another owner's)."},
    409: {
        "model": DatasetConflict,
        "description": "A queued or running job uses the dataset (cancel it or wait), or, without "
        "`cascade=true`, finished jobs, trained models or sweeps depend on it: `dependents` "
        "gives their counts and ids.",
    },
}


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_DELETE_RESPONSES)
def delete_dataset(
    session: SessionDep,
    principal: CurrentPrincipal,
    dataset_id: str,
    cascade: Annotated[
        bool,
        Query(
            description="Also delete the finished jobs, trained models (and their files) and "
            "sweeps that depend on the dataset. Without it, a dataset that has any is a 409 that "
            "lists them."
        ),
    ] = False,
) -> Response:
    """Delete a dataset and its file. Its finished jobs, their models and its sweeps go with it
    only when asked (`cascade=true`): otherwise a 409 lists them. Always 409 while a queued or
    running job uses it."""
    datasets.delete(session, principal, dataset_id, cascade=cascade)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
