import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import datasets, keys
from service.core import errors, orm, storage
from service.core.config import Settings, get_settings
from service.schemas.datasets import DatasetRead
from tests.conftest import DATA

CONCRETE = (DATA / "concrete_data.csv").read_bytes()
PENGUINS = (DATA / "penguins.csv").read_bytes()
OWNER = keys.Principal(owner="alice")


def upload(
    session: Session, content: bytes, filename: str | None = "data.csv", name: str | None = None
) -> orm.Dataset:
    return datasets.create(session, OWNER, io.BytesIO(content), filename, "text/csv", name)


def reject(
    session: Session, content: bytes, filename: str | None = "data.csv"
) -> errors.DendriteError:
    with pytest.raises(errors.DendriteError) as caught:
        upload(session, content, filename)
    return caught.value


def columns_by_name(dataset: orm.Dataset) -> dict[str, dict[str, Any]]:
    return {column["name"]: column for column in dataset.columns}


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def stored_files(settings: Settings) -> list[Path]:
    return [path for path in settings.artifacts_path.rglob("*") if path.is_file()]


def dataset_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(orm.Dataset)) or 0


def test_create_concrete_csv_infers_numeric_columns(session: Session) -> None:
    dataset = upload(session, CONCRETE, "concrete_data.csv")

    columns = columns_by_name(dataset)
    assert (dataset.name, dataset.format, dataset.rows) == ("concrete_data", "csv", 1030)
    assert (dataset.size_bytes, dataset.sha256) == (
        len(CONCRETE),
        hashlib.sha256(CONCRETE).hexdigest(),
    )
    assert list(columns) == [
        "Cement",
        "Blast Furnace Slag",
        "Fly Ash",
        "Water",
        "Superplasticizer",
        "Coarse Aggregate",
        "Fine Aggregate",
        "Age",
        "Strength",
    ]
    assert [column["dtype"] for column in columns.values()] == ["float"] * 7 + ["integer", "float"]
    cement = columns["Cement"]
    assert (cement["min"], cement["max"], cement["missing"]) == (102.0, 540.0, 0)
    assert cement["mean"] == pytest.approx(281.167864, abs=1e-6)
    assert cement["std"] == pytest.approx(104.506364, abs=1e-6)
    assert columns["Strength"]["std"] == pytest.approx(16.705742, abs=1e-6)
    assert (columns["Age"]["min"], columns["Age"]["max"]) == (1, 365)
    with storage.local_file(dataset.storage_key) as stored:
        assert stored.read_bytes() == CONCRETE
    DatasetRead.model_validate(dataset)


def test_create_penguins_csv_counts_missing_and_string_values(session: Session) -> None:
    columns = columns_by_name(upload(session, PENGUINS, "penguins.csv"))

    assert {name: column["dtype"] for name, column in columns.items()} == {
        "species": "string",
        "island": "string",
        "bill_length_mm": "float",
        "bill_depth_mm": "float",
        "flipper_length_mm": "float",
        "body_mass_g": "float",
        "sex": "string",
        "year": "integer",
    }
    assert columns["bill_length_mm"]["missing"] == 2
    assert columns["sex"]["missing"] == 11
    assert columns["sex"]["values"] == [["male", 168], ["female", 165]]
    assert columns["species"]["values"] == [["Adelie", 152], ["Gentoo", 124], ["Chinstrap", 68]]
    assert columns["species"]["distinct"] == 3
    assert "mean" not in columns["species"] and "values" not in columns["year"]


def test_create_npz_records_shapes_statistics_and_labels(session: Session) -> None:
    dataset = upload(session, (DATA / "mnist_small.npz").read_bytes(), "mnist_small.npz")

    columns = columns_by_name(dataset)
    with np.load(DATA / "mnist_small.npz") as npz:
        x_train, y_train = npz["x_train"], npz["y_train"]
    assert (dataset.format, dataset.rows, dataset.name) == ("npz", 3000, "mnist_small")
    assert list(columns) == ["x_train", "y_train", "x_test", "y_test"]
    assert columns["x_train"]["shape"] == [3000, 28, 28]
    assert columns["x_test"]["shape"] == [1000, 28, 28]
    assert columns["x_train"]["dtype"] == "uint8"
    assert (columns["x_train"]["min"], columns["x_train"]["max"]) == (0, 255)
    assert columns["x_train"]["mean"] == pytest.approx(x_train.mean())
    assert columns["x_train"]["std"] == pytest.approx(x_train.std(ddof=1))
    assert columns["y_train"]["distinct"] == 10
    labels = dict(columns["y_train"]["values"])
    assert labels == {
        int(k): int(v) for k, v in zip(*np.unique(y_train, return_counts=True), strict=True)
    }
    assert "values" not in columns["x_train"]
    DatasetRead.model_validate(dataset)


def test_create_parquet_matches_csv_schema(session: Session, tmp_path: Path) -> None:
    frame = pd.read_csv(DATA / "penguins.csv")
    frame.to_parquet(tmp_path / "penguins.parquet")

    from_parquet = upload(session, (tmp_path / "penguins.parquet").read_bytes(), "penguins.parquet")
    from_csv = upload(session, PENGUINS, "penguins.csv")

    assert (from_parquet.format, from_parquet.rows) == ("parquet", 344)
    assert from_parquet.columns == from_csv.columns
    pd.testing.assert_frame_equal(
        datasets.load_frame(from_parquet), datasets.load_frame(from_csv), check_dtype=True
    )


def test_create_parquet_converts_categories_and_nullable_types(
    session: Session, tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {
            "color": pd.Categorical(["red", None, "blue"]),
            "count": pd.array([1, None, 3], dtype="Int64"),
            "ok": pd.array([True, None, False], dtype="boolean"),
        },
        index=pd.Index([7, 8, 9], name="id"),
    )
    frame.to_parquet(tmp_path / "t.parquet")

    dataset = upload(session, (tmp_path / "t.parquet").read_bytes(), "t.pq")

    assert {c["name"]: (c["dtype"], c["missing"]) for c in dataset.columns} == {
        "id": ("integer", 0),
        "color": ("string", 1),
        "count": ("float", 1),
        "ok": ("boolean", 1),
    }
    assert datasets.preview(dataset, limit=2) == [
        {"id": 7, "color": "red", "count": 1.0, "ok": True},
        {"id": 8, "color": None, "count": None, "ok": None},
    ]


def test_create_rejects_parquet_datetime_column(session: Session, tmp_path: Path) -> None:
    pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3)}).to_parquet(
        tmp_path / "t.parquet"
    )

    error = reject(session, (tmp_path / "t.parquet").read_bytes(), "t.parquet")

    assert (error.status_code, error.field) == (422, "when")
    assert "'when'" in error.detail


def test_create_strips_whitespace_and_bom(session: Session) -> None:
    content = "\ufeff a , label \r\n 1.5 , yes \r\n 2 , no \r\n NA , yes ".encode()

    columns = columns_by_name(upload(session, content))

    assert columns["a"]["dtype"] == "float"
    assert columns["a"]["missing"] == 1
    assert columns["label"]["values"] == [["yes", 2], ["no", 1]]


def test_create_reads_true_false_as_boolean(session: Session) -> None:
    columns = columns_by_name(upload(session, b"flag,x\nTrue,1\nfalse,2\n,3\nTRUE ,4\n"))

    assert columns["flag"]["dtype"] == "boolean"
    assert columns["flag"]["missing"] == 1
    assert columns["flag"]["values"] == [[True, 2], [False, 1]]


def test_create_reads_nan_literal_as_missing(session: Session) -> None:
    columns = columns_by_name(upload(session, b"x,y\n1.5,1\nNaN,2\n2.5,3\n"))

    assert (columns["x"]["dtype"], columns["x"]["missing"], columns["x"]["mean"]) == (
        "float",
        1,
        2.0,
    )


def test_create_defaults_name_to_dataset_without_file_name(session: Session) -> None:
    assert upload(session, b"a\n1\n", filename=None).name == "dataset"
    assert upload(session, b"a\n1\n", filename="C:\\Users\\me\\runs.csv").name == "runs"
    assert upload(session, b"a\n1\n", name="  my data ").name == "my data"


def test_create_rejects_empty_file(session: Session) -> None:
    error = reject(session, b"")

    assert (error.status_code, error.detail) == (422, "the file is empty")


def test_create_rejects_non_utf8_csv(session: Session) -> None:
    error = reject(session, "city,temp\nZürich,3\nMálaga,18\n".encode("latin-1"))

    assert error.status_code == 422
    assert "UTF-8" in error.detail and "line 2" in error.detail


def test_create_rejects_utf16_csv(session: Session) -> None:
    error = reject(session, "a,b\n1,2\n".encode("utf-16"))

    assert error.status_code == 422
    assert "UTF-8" in error.detail


def test_create_rejects_duplicate_column_names(session: Session) -> None:
    error = reject(session, b"Cement,Water, Cement\n1,2,3\n")

    assert error.status_code == 422
    assert "'Cement'" in error.detail and error.field == "Cement"


def test_create_rejects_unnamed_column(session: Session) -> None:
    error = reject(session, b",a,b\n0,1,2\n1,3,4\n")

    assert error.status_code == 422
    assert "column 1 has no name" in error.detail


def test_create_rejects_header_only_csv(session: Session) -> None:
    error = reject(session, b"a,b,c\r\n")

    assert error.status_code == 422
    assert "no data rows" in error.detail


def test_create_rejects_text_in_numeric_column(session: Session) -> None:
    lines = CONCRETE.split(b"\r\n")
    lines[3] = b"abc ," + lines[3].split(b",", 1)[1]

    error = reject(session, b"\r\n".join(lines), "concrete_data.csv")

    assert error.status_code == 422
    assert error.field == "Cement"
    assert "'Cement'" in error.detail and "row 3" in error.detail and "'abc'" in error.detail
    assert "blank" in error.detail


def test_create_keeps_mostly_text_column_as_string(session: Session) -> None:
    columns = columns_by_name(upload(session, b"code,x\n7,1\nA1,2\nB2,3\n"))

    assert columns["code"]["dtype"] == "string"


def test_create_rejects_infinite_value(session: Session) -> None:
    error = reject(session, b"x,Water\n1,2.5\n2,inf\n3,4\n")

    assert error.status_code == 422
    assert "'Water'" in error.detail and "row 2" in error.detail and error.field == "Water"


def test_create_rejects_row_with_extra_values(session: Session) -> None:
    assert "line 3" in reject(session, b"a,b\n1,2\n3,4,5\n").detail
    assert "row 1 has more values" in reject(session, b"a,b\n1,2,3\n4,5\n").detail


def test_create_rejects_parquet_name_with_csv_content(session: Session) -> None:
    error = reject(session, b"a,b\n1,2\n", "x.parquet")

    assert error.status_code == 422
    assert error.detail == "file 'x.parquet' is not a Parquet file; its content looks like CSV"


def test_create_rejects_binary_file(session: Session) -> None:
    error = reject(session, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png")

    assert error.status_code == 415
    assert all(kind in error.detail for kind in ("CSV", "Parquet", "NPZ"))


def test_create_rejects_unaccepted_text_extension(session: Session) -> None:
    error = reject(session, b'[{"a": 1}]', "records.json")

    assert error.status_code == 415
    assert "'.json'" in error.detail


def test_create_rejects_zip_without_arrays(session: Session) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sheet.xml", "<x/>")

    assert reject(session, buffer.getvalue(), "book.xlsx").status_code == 415


def test_create_rejects_corrupt_parquet(session: Session) -> None:
    error = reject(session, b"PAR1 this is not really parquet", "x.parquet")

    assert error.status_code == 422
    assert "Parquet" in error.detail


def test_create_rejects_npz_with_unexpected_keys(session: Session) -> None:
    error = reject(session, npz_bytes(features=np.zeros((3, 2)), y=np.zeros(3)), "a.npz")

    assert error.status_code == 422
    assert "'x' and 'y'" in error.detail and "'x_train' and 'y_train'" in error.detail


def test_create_rejects_npz_object_array(session: Session) -> None:
    content = npz_bytes(x=np.array([[1], "a"], dtype=object), y=np.zeros(2))

    error = reject(session, content, "a.npz")

    assert error.status_code == 422
    assert "'x'" in error.detail


def test_create_rejects_npz_with_unequal_lengths(session: Session) -> None:
    error = reject(session, npz_bytes(x_train=np.zeros((5, 2)), y_train=np.zeros(4)), "a.npz")

    assert error.status_code == 422
    assert "5" in error.detail and "4" in error.detail


def test_create_rejects_npz_with_nan(session: Session) -> None:
    error = reject(session, npz_bytes(x=np.array([[1.0], [np.nan]]), y=np.zeros(2)), "a.npz")

    assert (error.status_code, error.field) == (422, "x")


def test_create_rejects_file_over_limit(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_UPLOAD_BYTES", "1000")
    get_settings.cache_clear()

    error = reject(session, CONCRETE)

    assert error.status_code == 413
    assert "1000 bytes" in error.detail
    assert stored_files(settings) == []


def test_create_leaves_no_file_or_row_when_rejected(session: Session, settings: Settings) -> None:
    reject(session, b"a,b\n1,x\n2,3\n3,4\n")
    reject(session, npz_bytes(x=np.zeros((2, 2)), y=np.zeros(3)), "a.npz")

    assert stored_files(settings) == []
    assert dataset_count(session) == 0


def test_get_by_name_returns_newest(session: Session) -> None:
    upload(session, b"a\n1\n", name="runs")
    newest = upload(session, b"a\n1\n2\n", name="runs")

    assert datasets.get(session, OWNER, "runs") is newest
    assert datasets.get(session, OWNER, newest.id) is newest


def test_get_unknown_raises_not_found(session: Session) -> None:
    with pytest.raises(errors.NotFound, match="dataset 'nope' does not exist") as caught:
        datasets.get(session, OWNER, "nope")

    assert caught.value.field == "dataset_id"


def test_page_lists_newest_first(session: Session) -> None:
    created = [upload(session, b"a\n1\n", name=f"d{i}") for i in range(3)]

    items, total = datasets.page(session, OWNER, limit=2, offset=0)

    assert total == 3
    assert [item.name for item in items] == ["d2", "d1"]
    assert datasets.page(session, OWNER, limit=2, offset=2)[0] == [created[0]]


def test_delete_rejects_dataset_with_active_job(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    job = orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=5, status="running")
    session.add(job)
    session.flush()

    with pytest.raises(errors.Conflict) as caught:
        datasets.delete(session, OWNER, dataset.id)

    assert caught.value.status_code == 409
    assert job.id in caught.value.detail
    assert storage.exists(dataset.storage_key)


def test_delete_refuses_dataset_with_finished_jobs_listing_them(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    jobs = [
        orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=5, status=status)
        for status in ("failed", "succeeded", "cancelled")
    ]
    session.add_all(jobs)
    session.flush()

    with pytest.raises(errors.HasDependents) as caught:
        datasets.delete(session, OWNER, dataset.id)

    assert caught.value.status_code == 409 and caught.value.field == "dataset_id"
    dependents = caught.value.extra["dependents"]
    assert dependents["jobs"]["count"] == 3
    assert set(dependents["jobs"]["ids"]) == {job.id for job in jobs}
    assert dependents["models"] == {"count": 0, "ids": []}
    assert "cascade=true" in caught.value.detail
    assert dataset_count(session) == 1 and storage.exists(dataset.storage_key)


def test_delete_lists_at_most_twenty_ids_of_a_kind_but_counts_all(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    session.add_all(
        orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=5, status="failed")
        for _ in range(25)
    )
    session.flush()

    with pytest.raises(errors.HasDependents) as caught:
        datasets.delete(session, OWNER, dataset.id)

    jobs = caught.value.extra["dependents"]["jobs"]
    assert jobs["count"] == 25 and len(jobs["ids"]) == datasets.MAX_LISTED_IDS == 20


def test_delete_with_cascade_removes_row_file_and_finished_jobs(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    session.add(
        orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=5, status="failed")
    )
    session.flush()

    datasets.delete(session, OWNER, dataset.id, cascade=True)
    assert storage.exists(dataset.storage_key)  # until the delete commits
    session.commit()

    assert not storage.exists(dataset.storage_key)
    assert dataset_count(session) == 0
    assert session.scalar(select(func.count()).select_from(orm.Job)) == 0
    with pytest.raises(errors.NotFound):
        datasets.delete(session, OWNER, dataset.id)


def test_delete_with_cascade_keeps_a_sweep_with_trials_on_another_dataset(
    session: Session,
) -> None:
    doomed, kept = upload(session, CONCRETE), upload(session, CONCRETE)
    sweep = orm.Sweep(owner=OWNER.owner, request={}, metric="val_loss", direction="min")
    session.add(sweep)
    session.flush()
    for number, dataset in enumerate((doomed, kept)):
        session.add(
            orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=5,
                    status="succeeded", sweep_id=sweep.id, sweep_trial=number)
        )  # fmt: skip
    session.flush()

    datasets.delete(session, OWNER, doomed.id, cascade=True)
    session.commit()

    assert session.get(orm.Sweep, sweep.id) is not None
    trials = session.scalars(select(orm.Job.dataset_id).where(orm.Job.sweep_id == sweep.id))
    assert list(trials) == [kept.id]


def test_storage_used_counts_the_owners_datasets_and_models(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    upload(session, PENGUINS)
    datasets.create(session, keys.Principal(owner="bob"), io.BytesIO(CONCRETE), "b.csv", None, None)
    job = orm.Job(dataset_id=dataset.id, task="regression", request={}, epochs=1)
    session.add(job)
    session.flush()
    session.add(
        orm.Model(owner=OWNER.owner, job_id=job.id, task="regression", input_schema={},
                  outputs={}, parameters=1, size_bytes=1234, storage_key="models/x.keras")
    )  # fmt: skip
    session.flush()

    assert datasets.storage_used(session, OWNER.owner) == len(CONCRETE) + len(PENGUINS) + 1234
    assert datasets.storage_used(session, "carol") == 0


def test_create_past_the_quota_stops_reading_and_leaves_no_file(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(3 << 20))
    get_settings.cache_clear()
    stream = io.BytesIO(b"a,b\n" + b"1,2\n" * (4 << 20))  # 16 MiB

    with pytest.raises(errors.QuotaExceeded) as caught:
        datasets.create(session, OWNER, stream, "big.csv", "text/csv", None)

    assert caught.value.status_code == 413 and caught.value.field == "file"
    assert "0 of 3145728 bytes" in caught.value.detail
    assert stream.tell() <= (3 << 20) + datasets.CHUNK_BYTES  # not read to its end
    assert stored_files(settings) == [] and dataset_count(session) == 0


def test_delete_rolled_back_keeps_row_and_file(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    session.commit()

    datasets.delete(session, OWNER, dataset.id)
    session.rollback()

    assert storage.exists(dataset.storage_key)
    assert dataset_count(session) == 1


def test_upload_rolled_back_leaves_no_file(session: Session) -> None:
    dataset = upload(session, CONCRETE)
    assert storage.exists(dataset.storage_key)

    session.rollback()  # as when the commit after the upload fails

    assert not storage.exists(dataset.storage_key)
    assert dataset_count(session) == 0


def test_preview_returns_json_safe_records(session: Session) -> None:
    dataset = upload(session, PENGUINS, "penguins.csv")

    rows = datasets.preview(dataset, limit=5)

    assert len(rows) == 5
    assert rows[0] == {
        "species": "Adelie",
        "island": "Torgersen",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181.0,
        "body_mass_g": 3750.0,
        "sex": "male",
        "year": 2007,
    }
    assert rows[3]["bill_length_mm"] is None and rows[3]["sex"] is None
    assert type(rows[0]["year"]) is int
    json.dumps(rows, allow_nan=False)


def test_preview_keeps_text_columns_as_text(session: Session) -> None:
    dataset = upload(session, b"code,flag\n007,true\nA1,\nB2,false\n")

    assert datasets.preview(dataset, limit=2) == [
        {"code": "007", "flag": True},
        {"code": "A1", "flag": None},
    ]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_preview_from_s3_matches_the_local_one(
    session: Session, tmp_path: Path, file_format: str, request: pytest.FixtureRequest
) -> None:
    """The preview reads only the head (CSV) or the footer and first row group (Parquet) of a
    remote file, and shows what a local store's preview shows."""
    content = PENGUINS
    if file_format == "parquet":
        pd.read_csv(DATA / "penguins.csv").to_parquet(tmp_path / "p.parquet")
        content = (tmp_path / "p.parquet").read_bytes()
    local = datasets.preview(upload(session, content, f"penguins.{file_format}"), limit=7)
    request.getfixturevalue("s3_store")

    remote = datasets.preview(upload(session, content, f"penguins.{file_format}"), limit=7)

    assert remote == local and len(remote) == 7


def test_preview_npz_returns_index_x_and_y(session: Session) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    dataset = upload(session, npz_bytes(x=x, y=np.array([0, 1, 1, 0], dtype=np.int64)), "a.npz")

    rows = datasets.preview(dataset, limit=2)

    assert rows == [
        {"index": 0, "x": [0.0, 1.0, 2.0], "y": 0},
        {"index": 1, "x": [3.0, 4.0, 5.0], "y": 1},
    ]
    json.dumps(rows, allow_nan=False)


def test_load_frame_matches_recorded_dtypes(session: Session) -> None:
    dataset = upload(session, PENGUINS, "penguins.csv")

    frame = datasets.load_frame(dataset)

    assert frame.shape == (344, 8)
    assert frame["species"].iloc[0] == "Adelie"
    assert frame["year"].dtype == np.int64 and frame["bill_length_mm"].dtype == np.float64


def test_load_arrays_returns_npz_arrays(session: Session) -> None:
    dataset = upload(session, (DATA / "mnist_small.npz").read_bytes(), "mnist_small.npz")

    arrays = datasets.load_arrays(dataset)

    assert {key: array.shape for key, array in arrays.items()} == {
        "x_train": (3000, 28, 28),
        "y_train": (3000,),
        "x_test": (1000, 28, 28),
        "y_test": (1000,),
    }
    with pytest.raises(errors.InvalidInput):
        datasets.load_frame(dataset)
