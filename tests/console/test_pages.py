"""The console over HTTP: sessions (HttpOnly cookie, CSRF on every form), its CSP, owners kept
apart, admin-only keys, and the forms' errors shown on the page."""

import pytest
from fastapi.testclient import TestClient

from service.core.config import get_settings
from tests.api.conftest import create_key
from tests.conftest import DATA
from tests.console.conftest import SignIn, form_token, sign_in_with

PAGES = ["/ui/jobs", "/ui/datasets", "/ui/jobs/new", "/ui/compare", "/ui/sweeps", "/ui/models"]


def _upload(client: TestClient, name: str = "concrete") -> str:
    page = client.get("/ui/datasets")
    response = client.post(
        "/ui/datasets",
        data={"csrf": form_token(page.text), "name": name},
        files={
            "file": ("concrete_data.csv", (DATA / "concrete_data.csv").read_bytes(), "text/csv")
        },
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_sign_in_sets_an_http_only_strict_cookie_and_never_shows_the_key(
    app_client: TestClient,
) -> None:
    key = create_key("alice")
    form = app_client.get("/ui/sign-in")
    response = app_client.post(
        "/ui/sign-in", data={"sign_in_token": form_token(form.text, "sign_in_token"), "key": key}
    )

    assert response.status_code == 303 and response.headers["location"] == "/ui/jobs"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "dendrite_console" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert key not in cookie and key[3:20] not in cookie
    for page in PAGES:
        shown = app_client.get(page)
        assert shown.status_code == 200, (page, shown.text)
        assert key not in shown.text and key not in str(shown.url)


def test_pages_without_a_session_lead_to_sign_in(app_client: TestClient) -> None:
    for page in [*PAGES, "/ui/keys", "/ui/jobs/x/events"]:
        response = app_client.get(page)
        assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in"
    assert app_client.get("/").headers["location"] == "/ui"


def test_sign_in_with_a_bad_key_says_so(app_client: TestClient) -> None:
    form = app_client.get("/ui/sign-in")
    token = form_token(form.text, "sign_in_token")
    response = app_client.post("/ui/sign-in", data={"sign_in_token": token, "key": "dk_nope"})

    assert response.status_code == 401
    assert "not valid" in response.text and "dendrite_console" not in response.headers.get(
        "set-cookie", ""
    )


def test_sign_in_without_its_form_token_is_refused(app_client: TestClient) -> None:
    key = create_key("alice")
    response = app_client.post("/ui/sign-in", data={"sign_in_token": "forged", "key": key})

    assert response.status_code == 403
    assert "dendrite_console" not in response.headers.get("set-cookie", "")


def test_form_posts_without_the_session_token_are_forbidden(sign_in: SignIn) -> None:
    alice = sign_in("alice", admin=True)
    files = {"file": ("a.csv", b"a,b\n1,2\n", "text/csv")}

    for path, data in [
        ("/ui/datasets", {"csrf": "forged", "name": "x"}),
        ("/ui/keys", {"csrf": "forged", "owner": "mallory"}),
        ("/ui/models/any/aliases", {"csrf": "forged", "alias": "production", "version": "1"}),
        ("/ui/jobs", {"csrf": "forged", "body": "{}"}),
        ("/ui/sign-out", {"csrf": "forged"}),
    ]:
        response = alice.post(path, data=data, files=files if path == "/ui/datasets" else None)
        assert response.status_code == 403, (path, response.text)
        assert "reload the page" in response.text
    assert "<td>mallory</td>" not in alice.get("/ui/keys").text
    assert "No datasets yet" in alice.get("/ui/datasets").text


def test_console_pages_allow_only_their_own_script_and_style(sign_in: SignIn) -> None:
    alice = sign_in("alice")
    for page in [*PAGES, "/ui/sign-in", "/ui/jobs/missing"]:
        response = alice.get(page)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, page
        assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text
    assert alice.get("/ui/static/console.js").status_code == 200


def test_an_owner_cannot_see_another_owners_things(sign_in: SignIn) -> None:
    alice, bob = sign_in("alice"), sign_in("bob")
    dataset_id = _upload(alice, "alice-private")
    page = alice.get("/ui/jobs/new")
    submitted = alice.post(
        "/ui/jobs",
        data={
            "csrf": form_token(page.text),
            "dataset_id": dataset_id,
            "body": '{"task": "regression", "target": '
            '"Strength", "network": {"layers": [{"type": "dense", "units": 4}]}}',
        },
    )
    assert submitted.status_code == 303, submitted.text
    job_id = submitted.headers["location"].rsplit("/", 1)[1]
    assert job_id in alice.get("/ui/jobs").text

    assert "alice-private" not in bob.get("/ui/datasets").text
    assert job_id not in bob.get("/ui/jobs").text
    for path in [
        f"/ui/datasets/{dataset_id}",
        f"/ui/jobs/{job_id}",
        f"/ui/jobs/{job_id}/events",
        f"/ui/compare?ids={job_id}&ids={job_id}x",
    ]:
        response = bob.get(path)
        assert response.status_code == 404, (path, response.text)
        assert "alice-private" not in response.text
    bob_page = bob.get("/ui/jobs/new")
    stolen = bob.post(
        "/ui/jobs",
        data={
            "csrf": form_token(bob_page.text),
            "dataset_id": dataset_id,
            "body": '{"task": "regression", "target": "Strength", '
            '"network": {"layers": [{"type": "dense", "units": 4}]}}',
        },
    )
    # As POST /v1/jobs answers for a dataset the owner cannot see.
    assert stolen.status_code == 404 and "location" not in stolen.headers
    assert "does not exist" in stolen.text and "alice-private" not in stolen.text
    assert "No jobs" in bob.get("/ui/jobs").text


def test_keys_page_is_for_admins_and_shows_a_new_key_once(sign_in: SignIn) -> None:
    alice, root = sign_in("alice"), sign_in("root", admin=True)
    assert alice.get("/ui/keys").status_code == 403
    assert 'href="/ui/keys"' not in alice.get("/ui/jobs").text

    page = root.get("/ui/keys")
    created = root.post("/ui/keys", data={"csrf": form_token(page.text), "owner": "carol"})

    assert created.status_code == 201
    key = created.text.split('<pre id="new-key">', 1)[1].split("</pre>", 1)[0]
    assert key.startswith("dk_")
    assert key not in root.get("/ui/keys").text
    carol = sign_in_with(TestClient(root.app, follow_redirects=False), key)
    assert carol.get("/ui/jobs").status_code == 200
    key_id = created.text.split('<tr data-key="', 1)[1].split('"', 1)[0]
    revoked = root.post(f"/ui/keys/{key_id}/revoke", data={"csrf": form_token(page.text)})
    assert revoked.status_code == 303
    # Revoking the key ends the sessions it opened.
    assert carol.get("/ui/jobs").headers["location"] == "/ui/sign-in"


def test_sign_out_ends_the_session(sign_in: SignIn) -> None:
    alice = sign_in("alice")
    page = alice.get("/ui/jobs")

    signed_out = alice.post("/ui/sign-out", data={"csrf": form_token(page.text)})

    assert signed_out.headers["location"] == "/ui/sign-in"
    assert alice.get("/ui/jobs").headers["location"] == "/ui/sign-in"


def test_submit_with_a_bad_request_shows_what_to_fix(sign_in: SignIn) -> None:
    alice = sign_in("alice")
    dataset_id = _upload(alice)
    page = alice.get("/ui/jobs/new")
    assert "&#34;units&#34;: 50" in page.text and dataset_id in page.text  # the course network

    for body, message in [
        ("{not json", "not valid JSON"),
        (
            '{"task": "regression", "target": "Strength", "network": {"layers": []},'
            ' "training": {"epochs": 0}}',
            "/training/epochs",
        ),
    ]:
        response = alice.post(
            "/ui/jobs",
            data={"csrf": form_token(page.text), "dataset_id": dataset_id, "body": body},
        )
        assert response.status_code == 422, response.text
        assert message in response.text


def test_form_posts_without_a_session_go_to_sign_in_unread(app_client: TestClient) -> None:
    files = {"file": ("a.csv", b"a,b\n1,2\n", "text/csv")}
    for path in ["/ui/datasets", "/ui/jobs", "/ui/keys", "/ui/sign-out"]:
        response = app_client.post(path, data={"csrf": "x"}, files=files)
        assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in"


def test_console_upload_may_pass_the_request_body_limit(
    sign_in: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_MAX_REQUEST_BYTES", "1000")  # the concrete file is 58 kB
    get_settings.cache_clear()
    alice = sign_in("alice")

    dataset_id = _upload(alice)

    assert "1030" in alice.get(f"/ui/datasets/{dataset_id}").text


def test_compare_more_than_twenty_jobs_says_how_many(sign_in: SignIn) -> None:
    alice = sign_in("alice")
    query = "&".join(f"ids=job{n}" for n in range(21))

    response = alice.get(f"/ui/compare?{query}")

    assert response.status_code == 422 and "at most 20" in response.text
    assert "<h1>422" in response.text


def test_with_authentication_off_everyone_signs_in_as_the_local_admin(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_AUTH_ENABLED", "false")
    get_settings.cache_clear()
    form = app_client.get("/ui/sign-in")
    assert 'name="key"' not in form.text and "Authentication is off" in form.text

    sign_in_with(app_client, "")

    jobs = app_client.get("/ui/jobs")
    assert jobs.status_code == 200 and "local (admin)" in jobs.text
    assert app_client.get("/ui/keys").status_code == 200
