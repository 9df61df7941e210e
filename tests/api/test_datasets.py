"""POST/GET/DELETE /v1/datasets over HTTP."""

import copy
import errno
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.core import storage
from service.core.config import Settings, get_settings
from service.core.db import session_scope
from service.core.orm import Job, JobStatus, Model
from service.schemas import examples
from tests.api.conftest import Upload, assert_envelope, concrete_job, upload_bytes, upload_file
from tests.conftest import DATA

CONCRETE = (DATA / "concrete_data.csv").read_bytes()
CONCRETE_COLUMNS = [
    "Cement", "Blast Furnace Slag", "Fly Ash", "Water", "Superplasticizer",
    "Coarse Aggregate", "Fine Aggregate", "Age", "Strength",
]  # fmt: skip


def test_upload_concrete_csv_returns_schema_and_location(client: TestClient) -> None:
    response = upload_file(client, "concrete_data.csv", name="concrete")

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert response.headers["location"] == f"/v1/datasets/{dataset['id']}"
    assert (dataset["name"], dataset["format"], dataset["rows"]) == ("concrete", "csv", 1030)
    assert dataset["size_bytes"] == len(CONCRETE)
    assert dataset["sha256"] == hashlib.sha256(CONCRETE).hexdigest()
    assert [column["name"] for column in dataset["columns"]] == CONCRETE_COLUMNS
    cement = dataset["columns"][0]
    assert cement["dtype"] == "float" and cement["missing"] == 0
    assert cement["mean"] == pytest.approx(281.167864, abs=1e-6)
    assert (cement["min"], cement["max"]) == (102.0, 540.0)


def test_upload_without_name_names_dataset_after_file(client: TestClient) -> None:
    response = upload_file(client, "concrete_data.csv")

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "concrete_data"


def test_upload_npz_describes_arrays(client: TestClient) -> None:
    response = upload_file(client, "mnist_small.npz", name="mnist")

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["format"] == "npz"
    shapes = {column["name"]: column["shape"] for column in dataset["columns"]}
    assert shapes["x_train"] == [3000, 28, 28] and shapes["y_train"] == [3000]


def test_list_datasets_returns_newest_first_with_total(client: TestClient, upload: Upload) -> None:
    first = upload("concrete_data.csv", name="first")
    second = upload("penguins.csv", name="second")

    page = client.get("/v1/datasets").json()
    limited = client.get("/v1/datasets", params={"limit": 1, "offset": 1}).json()

    assert page["total"] == 2
    assert {item["id"] for item in page["items"]} == {first["id"], second["id"]}
    assert (limited["total"], limited["limit"], limited["offset"]) == (2, 1, 1)
    assert len(limited["items"]) == 1


def test_get_dataset_by_id_and_by_name(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv", name="concrete")

    by_id = client.get(f"/v1/datasets/{dataset['id']}")
    by_name = client.get("/v1/datasets/concrete")

    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == dataset


def test_get_dataset_unknown_returns_404_envelope(client: TestClient) -> None:
    body = assert_envelope(client.get("/v1/datasets/nope"), 404, field="dataset_id")
    assert "nope" in body["detail"]


def test_preview_dataset_returns_first_rows_up_to_limit(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv")

    response = client.get(f"/v1/datasets/{dataset['id']}/preview", params={"limit": 3})

    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert len(rows) == 3
    assert list(rows[0]) == CONCRETE_COLUMNS
    assert rows[0]["Cement"] == 540.0 and rows[0]["Strength"] == 79.99
    assert rows[1]["Coarse Aggregate"] == 1055.0


def test_preview_dataset_limit_zero_returns_422(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv")

    response = client.get(f"/v1/datasets/{dataset['id']}/preview", params={"limit": 0})

    assert_envelope(response, 422, field="limit")


def test_delete_dataset_returns_204_then_404(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv")

    deleted = client.delete(f"/v1/datasets/{dataset['id']}")

    assert deleted.status_code == 204 and deleted.content == b""
    assert_envelope(client.get(f"/v1/datasets/{dataset['id']}"), 404)
    assert_envelope(client.delete(f"/v1/datasets/{dataset['id']}"), 404)


def test_delete_dataset_used_by_queued_job_returns_409(client: TestClient, upload: Upload) -> None:
    dataset = upload("concrete_data.csv")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"]))
    assert job.status_code == 202, job.text

    response = client.delete(f"/v1/datasets/{dataset['id']}")

    body = assert_envelope(response, 409, field="dataset_id")
    assert job.json()["id"] in body["detail"]
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_delete_dataset_after_its_job_is_cancelled_lists_it_until_cascade(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    client.post(f"/v1/jobs/{job['id']}/cancel")

    refused = client.delete(f"/v1/datasets/{dataset['id']}")
    deleted = client.delete(f"/v1/datasets/{dataset['id']}", params={"cascade": "true"})

    assert refused.status_code == 409, refused.text
    assert refused.json()["dependents"]["jobs"] == {"count": 1, "ids": [job["id"]]}
    assert deleted.status_code == 204, deleted.text
    assert_envelope(client.get(f"/v1/jobs/{job['id']}"), 404)


def _finish_with_models(job_ids: list[str]) -> list[str]:
    """Mark jobs succeeded with a stored model each, as a worker would; the models' ids."""
    models = []
    with session_scope() as session:
        for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
            job.status = JobStatus.succeeded
            key = f"models/{job.id}.keras"
            storage.write_stream(key, [b"a model"], 1 << 20)
            model = Model(owner=job.owner, job_id=job.id, task=job.task, input_schema={},
                          outputs={}, parameters=1, size_bytes=7, storage_key=key)  # fmt: skip
            session.add(model)
            session.flush()
            models.append(model.id)
    return models


def test_delete_dataset_with_models_and_a_sweep_returns_409_listing_them_and_keeps_all(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv", name="concrete")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    sweep = client.post("/v1/sweeps", json=copy.deepcopy(examples.CONCRETE_SWEEP)).json()
    trials = [trial["job_id"] for trial in sweep["trials"]]
    models = _finish_with_models([job["id"], *trials])

    response = client.delete(f"/v1/datasets/{dataset['id']}")

    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("conflict", "dataset_id")
    assert "cascade=true" in body["detail"]
    dependents = body["dependents"]
    assert dependents["jobs"]["count"] == 1 + len(trials)
    assert set(dependents["jobs"]["ids"]) == {job["id"], *trials}
    assert dependents["models"]["count"] == len(models)
    assert set(dependents["models"]["ids"]) == set(models)
    assert dependents["sweeps"] == {"count": 1, "ids": [sweep["id"]]}
    # Nothing went: the dataset, the models (and their files) and the sweep's results.
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    assert client.get("/v1/models").json()["total"] == len(models)
    assert client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "succeeded"
    assert all(storage.exists(f"models/{job_id}.keras") for job_id in [job["id"], *trials])


def test_delete_dataset_with_cascade_deletes_its_jobs_models_files_and_sweep(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv", name="concrete")
    kept = upload("concrete_data.csv", name="other")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    other_job = client.post("/v1/jobs", json=concrete_job(kept["id"])).json()
    sweep = client.post("/v1/sweeps", json=copy.deepcopy(examples.CONCRETE_SWEEP)).json()
    trials = [trial["job_id"] for trial in sweep["trials"]]
    _finish_with_models([job["id"], other_job["id"], *trials])

    response = client.delete(f"/v1/datasets/{dataset['id']}?cascade=true")

    assert response.status_code == 204, response.text
    assert_envelope(client.get(f"/v1/datasets/{dataset['id']}"), 404)
    assert_envelope(client.get(f"/v1/sweeps/{sweep['id']}"), 404)  # not left "failed"
    assert [m["job_id"] for m in client.get("/v1/models").json()["items"]] == [other_job["id"]]
    assert not any(storage.exists(f"models/{job_id}.keras") for job_id in [job["id"], *trials])
    assert storage.exists(f"models/{other_job['id']}.keras")
    assert client.get(f"/v1/jobs/{other_job['id']}").status_code == 200


def test_delete_dataset_of_another_owner_with_cascade_returns_404(
    client: TestClient, other_client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv")

    response = other_client.delete(f"/v1/datasets/{dataset['id']}?cascade=true")

    assert_envelope(response, 404, field="dataset_id")
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_openapi_documents_the_delete_cascade_and_its_409(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/datasets/{dataset_id}"]["delete"]

    assert [p["name"] for p in operation["parameters"]] == ["dataset_id", "cascade"]
    assert "cascade=true" in operation["description"]
    conflict = operation["responses"]["409"]
    assert "dependents" in conflict["description"]
    assert conflict["content"]["application/json"]["schema"]["$ref"].endswith("DatasetConflict")


# --- storage quota -----------------------------------------------------------------------------


def test_upload_past_the_storage_quota_returns_413_and_stores_nothing(
    client: TestClient, other_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(len(CONCRETE) * 2 + 100))
    get_settings.cache_clear()
    for _ in range(2):
        assert upload_bytes(client, CONCRETE).status_code == 201

    response = upload_bytes(client, CONCRETE)

    body = assert_envelope(response, 413, field="file")
    assert body["error"] == "quota_exceeded"
    used, quota = len(CONCRETE) * 2, len(CONCRETE) * 2 + 100
    assert f"{used} of {quota} bytes" in body["detail"]
    assert "DENDRITE_MAX_STORAGE_BYTES_PER_OWNER" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 2
    stored = list((get_settings().artifacts_path / "datasets").iterdir())
    assert len(stored) == 2  # no partial file
    # The quota is per owner: another owner still has room.
    assert upload_bytes(other_client, CONCRETE).status_code == 201


def test_upload_quota_counts_models_and_frees_with_a_delete(
    client: TestClient, upload: Upload, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = upload("concrete_data.csv")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    _finish_with_models([job["id"]])  # 7 bytes
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(len(CONCRETE) * 2 + 6))
    get_settings.cache_clear()

    refused = upload_bytes(client, CONCRETE)
    client.delete(f"/v1/datasets/{dataset['id']}?cascade=true")
    accepted = upload_bytes(client, CONCRETE)

    assert assert_envelope(refused, 413)["error"] == "quota_exceeded"
    assert f"{len(CONCRETE) + 7} of" in refused.json()["detail"]
    assert accepted.status_code == 201, accepted.text


def test_upload_binary_file_returns_415_naming_formats(client: TestClient) -> None:
    content = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)

    response = upload_bytes(client, content, "photo.png", content_type="image/png")

    body = assert_envelope(response, 415, field="file")
    assert all(label in body["detail"] for label in ("CSV", "Parquet", "NPZ"))


def test_upload_text_with_unknown_extension_returns_415(client: TestClient) -> None:
    response = upload_bytes(client, b'{"a": 1}\n', "data.json", content_type="application/json")

    body = assert_envelope(response, 415, field="file")
    assert all(label in body["detail"] for label in ("CSV", "Parquet", "NPZ"))


def test_upload_empty_file_returns_422(client: TestClient) -> None:
    body = assert_envelope(upload_bytes(client, b"", "empty.csv"), 422, field="file")
    assert "empty" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_upload_csv_content_named_parquet_returns_422(client: TestClient) -> None:
    response = upload_bytes(
        client, CONCRETE, "concrete.parquet", content_type="application/octet-stream"
    )

    body = assert_envelope(response, 422, field="file")
    assert "Parquet" in body["detail"] and "CSV" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


@pytest.mark.parametrize("content_type", ["image/png", "application/json", "text/plain"])
def test_upload_csv_with_a_lying_content_type_is_read_as_csv(
    client: TestClient, content_type: str
) -> None:
    response = upload_bytes(client, b"a,b\n1,2\n3,4\n", "data.csv", content_type=content_type)

    assert response.status_code == 201, response.text
    assert response.json()["format"] == "csv"


def test_upload_npz_sent_as_text_csv_is_read_as_npz(client: TestClient) -> None:
    response = upload_bytes(
        client, (DATA / "mnist_small.npz").read_bytes(), "mnist.npz", content_type="text/csv"
    )

    assert response.status_code == 201, response.text
    assert response.json()["format"] == "npz"


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("../../etc/passwd.csv", "passwd"),
        ("..\\..\\windows\\win.ini.csv", "win.ini"),
        ("/etc/cron.d/evil.csv", "evil"),
        ("....//....//x.csv", "x"),
        ("%2e%2e%2fescape.csv", "%2e%2e%2fescape"),
    ],
)
def test_upload_file_name_with_a_path_never_reaches_the_filesystem(
    client: TestClient, settings: Settings, filename: str, name: str
) -> None:
    response = upload_bytes(client, b"a,b\n1,2\n", filename)

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == name
    data_dir = settings.data_dir.resolve()
    stored = [p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file()]
    assert [str(p) for p in stored if p.parts[0] == "artifacts"] == [
        f"artifacts/datasets/{dataset['id']}.csv"
    ]
    assert not (data_dir.parent / "etc").exists() and not (settings.data_dir / "etc").exists()


def test_upload_when_the_disk_fills_returns_507_and_keeps_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's own write meets ENOSPC part way (tests/behaviour/test_disk_full.py fills a real
    # filesystem, as root).
    def fills_up(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for number, chunk in enumerate(chunks):
            if number == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            yield chunk

    real_receive = storage.receive

    def receive(key: str, chunks: Iterable[bytes], limit: int) -> Any:
        return real_receive(key, fills_up(chunks), limit)

    monkeypatch.setattr(storage, "receive", receive)

    response = upload_bytes(client, b"a,b\n" + b"1,2\n" * (1 << 20))

    body = assert_envelope(response, 507)
    assert body["error"] == "insufficient_storage" and "nothing" in body["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0
    assert list((get_settings().artifacts_path / "datasets").iterdir()) == []


def test_upload_declared_past_the_quota_is_refused_before_its_body_is_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_STORAGE_BYTES_PER_OWNER", str(1 << 20))
    get_settings.cache_clear()
    read = 0

    def body() -> Iterator[bytes]:  # 64 MiB, declared in Content-Length
        nonlocal read
        for _ in range(64):
            read += 1
            yield b"\0" * (1 << 20)

    response = client.post(
        "/v1/datasets",
        content=body(),
        headers={
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(64 << 20),
        },
    )

    body_json = assert_envelope(response, 413, field="file")
    assert body_json["error"] == "quota_exceeded"
    assert "0 of 1048576 bytes" in body_json["detail"]
    assert read <= 1  # refused from the header: the body was not read
