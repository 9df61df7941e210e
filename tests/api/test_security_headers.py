"""Security headers: every response refuses MIME sniffing and framing; the job page runs only
its own script and style (CSP by hash), and /docs keeps loading Swagger UI."""

import base64
import hashlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.api.conftest import Upload, concrete_job


@pytest.fixture
def queued(client: TestClient, upload: Upload) -> dict[str, Any]:
    dataset: Any = upload("concrete_data.csv")
    response = client.post("/v1/jobs", json=concrete_job(dataset["id"]))
    assert response.status_code == 202, response.text
    return dict(response.json())


def _policy(response: Response) -> dict[str, list[str]]:
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


def _assert_hardened(response: Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert _policy(response)["frame-ancestors"] == ["'none'"]


def test_every_kind_of_response_refuses_sniffing_and_framing(
    client: TestClient, queued: dict[str, Any]
) -> None:
    keyless = TestClient(client.app)
    responses = [
        client.get("/healthz"),
        client.get(f"/v1/jobs/{queued['id']}"),
        client.get("/v1/jobs/no-such-job"),  # 404 envelope
        keyless.get("/v1/jobs"),  # 401 from the key dependency
        keyless.post("/v1/jobs", json={}),  # 401 from the middleware before the body
        client.get("/metrics"),
        client.get("/openapi.json"),
    ]
    for response in responses:
        _assert_hardened(response)


def test_job_page_allows_only_its_own_script_and_style(
    client: TestClient, queued: dict[str, Any]
) -> None:
    page = TestClient(client.app).get(f"/v1/jobs/{queued['id']}/page")

    assert page.status_code == 200
    _assert_hardened(page)
    policy = _policy(page)
    assert policy["default-src"] == ["'none'"]
    for element in ("script", "style"):
        [inline] = re.findall(rf"<{element}>(.*?)</{element}>", page.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert policy[f"{element}-src"] == [f"'sha256-{digest}'"]  # no 'unsafe-inline'
    assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["blob:"]
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page.text)  # nothing external


def test_docs_keeps_its_own_policy(client: TestClient) -> None:
    docs = client.get("/docs")

    assert docs.status_code == 200
    _assert_hardened(docs)
    # The page's own policy (tests/api/test_docs.py), not the default one.
    assert _policy(docs)["default-src"] == ["'none'"]
