"""/v1/keys over HTTP: admins list, create (the key shown once) and revoke keys; others get 403."""

from fastapi.testclient import TestClient

from tests.api.conftest import assert_envelope, bearer


def test_create_key_as_admin_shows_the_key_once_and_it_works(
    admin_client: TestClient, client: TestClient
) -> None:
    created = admin_client.post("/v1/keys", json={"owner": "carol"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith(body["prefix"]) and body["owner"] == "carol"
    assert not body["is_admin"] and body["revoked_at"] is None
    assert created.headers["Location"] == f"/v1/keys/{body['id']}"
    assert created.headers["Cache-Control"] == "no-store"
    as_carol = client.get("/v1/datasets", headers=bearer(body["key"]))
    assert as_carol.status_code == 200, as_carol.text
    listed = admin_client.get("/v1/keys").json()
    assert body["id"] in [k["id"] for k in listed["items"]]
    assert body["key"] not in created.text.replace(body["key"], "", 1)  # once in the response
    assert all("key" not in k and "key_sha256" not in k for k in listed["items"])
    assert body["key"] not in admin_client.get("/v1/keys").text


def test_list_keys_shows_last_use_and_admin_flag(admin_client: TestClient) -> None:
    listed = admin_client.get("/v1/keys")

    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert {k["owner"] for k in items} >= {"alice", "root"}
    root = next(k for k in items if k["owner"] == "root")
    assert root["is_admin"] and root["last_used_at"] is not None
    assert set(root) == {
        "id",
        "owner",
        "prefix",
        "is_admin",
        "created_at",
        "revoked_at",
        "last_used_at",
    }


def test_revoke_key_as_admin_ends_its_access(admin_client: TestClient, client: TestClient) -> None:
    created = admin_client.post("/v1/keys", json={"owner": "dave"}).json()
    assert client.get("/v1/jobs", headers=bearer(created["key"])).status_code == 200

    revoked = admin_client.delete(f"/v1/keys/{created['id']}")

    assert revoked.status_code == 204, revoked.text
    assert_envelope(client.get("/v1/jobs", headers=bearer(created["key"])), 401)
    listed = admin_client.get("/v1/keys").json()["items"]
    assert next(k for k in listed if k["id"] == created["id"])["revoked_at"] is not None
    assert admin_client.delete(f"/v1/keys/{created['id']}").status_code == 204  # harmless again


def test_keys_api_as_non_admin_is_forbidden(client: TestClient, admin_client: TestClient) -> None:
    someone = admin_client.post("/v1/keys", json={"owner": "erin"}).json()

    assert_envelope(client.get("/v1/keys"), 403)
    assert_envelope(client.post("/v1/keys", json={"owner": "mallory", "admin": True}), 403)
    assert_envelope(client.delete(f"/v1/keys/{someone['id']}"), 403)
    assert client.get("/v1/datasets", headers=bearer(someone["key"])).status_code == 200


def test_keys_api_without_a_key_is_unauthorized(client: TestClient) -> None:
    assert_envelope(client.get("/v1/keys", headers={"Authorization": ""}), 401)


def test_create_key_with_a_bad_owner_names_the_field(admin_client: TestClient) -> None:
    assert_envelope(admin_client.post("/v1/keys", json={"owner": "a:b"}), 422, field="owner")
    assert_envelope(admin_client.post("/v1/keys", json={"owner": "x", "extra": 1}), 422)


def test_revoke_missing_key_is_not_found(admin_client: TestClient) -> None:
    assert_envelope(admin_client.delete("/v1/keys/nope"), 404, field="key_id")
