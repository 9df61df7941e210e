"""Datasets in the console: the list, an upload form, and one dataset's schema, statistics and
first rows."""

from typing import Annotated, Any

from fastapi import File, Form, Request, Response, UploadFile

from service import datasets
from service.api.deps import SessionDep
from service.console.pages import Console, check_csrf, console_router, redirect, render
from service.schemas.datasets import DatasetRead

router = console_router()

PREVIEW_ROWS = 20


@router.get("/datasets")
def list_datasets(request: Request, session: SessionDep, console: Console) -> Response:
    """Your datasets, newest first, and the upload form."""
    items, total = datasets.page(session, console.principal, 200, 0)
    rows = [DatasetRead.model_validate(d) for d in items]
    return render(request, "datasets.html", console, datasets=rows, total=total)


@router.post("/datasets")
def upload_dataset(
    session: SessionDep,
    console: Console,
    csrf: Annotated[str, Form()],
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    """Upload a file as POST /v1/datasets does; then show the new dataset."""
    check_csrf(console, csrf)
    dataset = datasets.create(
        session, console.principal, file.file, file.filename, file.content_type, name or None
    )
    return redirect(f"/ui/datasets/{dataset.id}")


@router.get("/datasets/{dataset_id}")
def show_dataset(
    request: Request, session: SessionDep, console: Console, dataset_id: str
) -> Response:
    """One dataset: its columns with their statistics, and its first rows."""
    dataset = datasets.get(session, console.principal, dataset_id)
    preview = datasets.preview(dataset, PREVIEW_ROWS)
    if dataset.format == "npz":  # an image's 784 numbers would fill the page: show its shape
        preview = [{k: _summary(v) for k, v in row.items()} for row in preview]
    return render(
        request,
        "dataset.html",
        console,
        dataset=DatasetRead.model_validate(dataset),
        preview=preview,
        preview_columns=list(preview[0]) if preview else [],
    )


def _summary(value: Any) -> Any:
    """An array as its shape ("array 28 x 28"); anything else as it is."""
    if not isinstance(value, list):
        return value
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return "array " + " x ".join(str(n) for n in shape)
