"""POST/GET/DELETE /v1/datasets over HTTP."""

import hashlib

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
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


def test_delete_dataset_after_its_job_is_cancelled_returns_204(
    client: TestClient, upload: Upload
) -> None:
    dataset = upload("concrete_data.csv")
    job = client.post("/v1/jobs", json=concrete_job(dataset["id"])).json()
    client.post(f"/v1/jobs/{job['id']}/cancel")

    response = client.delete(f"/v1/datasets/{dataset['id']}")

    assert response.status_code == 204, response.text


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
