"""/docs and /redoc work offline: every script, style and icon they reference is served by dendrite
itself, and their Content-Security-Policy lets a browser fetch nothing from another host."""

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

EXPECTED_TYPES = {"script": "text/javascript", "stylesheet": "text/css", "icon": "image/png"}


class References(HTMLParser):
    """The URLs a page makes the browser load: scripts, stylesheets, icons, images, and the
    OpenAPI document (ReDoc's spec-url, Swagger UI's `url:`)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (kind, url)
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "script" and "src" in attributes:
            self.found.append(("script", attributes["src"]))
        elif tag == "script":
            self._in_script = True
        elif tag == "link":
            kind = "icon" if "icon" in attributes.get("rel", "") else "stylesheet"
            self.found.append((kind, attributes["href"]))
        elif tag in ("img", "iframe", "source"):
            self.found.append((tag, attributes.get("src", "")))
        elif tag == "redoc":
            self.found.append(("openapi", attributes["spec-url"]))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)
            self.found += [("openapi", url) for url in re.findall(r"url: '([^']*)'", data)]


def _references(page: Response) -> References:
    parser = References()
    parser.feed(page.text)
    return parser


def _policy(response: Response) -> dict[str, list[str]]:
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_loads_every_asset_from_this_server(client: TestClient, path: str) -> None:
    keyless = TestClient(client.app)
    page = keyless.get(path)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = _references(page)
    kinds = {kind for kind, _ in references.found}
    assert {"script", "icon", "openapi"} <= kinds
    for kind, url in references.found:
        # Same origin: a path on this server, never a scheme or a host (`//cdn...`).
        assert url.startswith("/") and not url.startswith("//"), url
        asset = keyless.get(url)
        assert asset.status_code == 200, url
        expected = EXPECTED_TYPES.get(kind, "application/json")
        assert asset.headers["content-type"].startswith(expected), (url, asset.headers)
    assert "http://" not in page.text and "https://" not in page.text


def test_swagger_ui_shows_dendrite_description_and_request_examples(client: TestClient) -> None:
    references = _references(TestClient(client.app).get("/docs"))
    [openapi_url] = [url for kind, url in references.found if kind == "openapi"]

    document = client.get(openapi_url).json()

    assert "Upload a dataset" in document["info"]["description"]
    job_body = document["components"]["schemas"]["JobCreate"]
    assert job_body["examples"]  # the course's networks, submitted as they stand


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_policy_allows_only_this_server(client: TestClient, path: str) -> None:
    page = TestClient(client.app).get(path)

    policy = _policy(page)
    assert policy["default-src"] == ["'none'"]
    for directive in ("style-src", "img-src", "font-src", "connect-src"):
        assert policy[directive][0] == "'self'", directive
        # Nothing but this server, inline styles and data: URIs: no host, no scheme-wide source.
        assert set(policy[directive][1:]) <= {"'unsafe-inline'", "data:"}, directive
    # Scripts: this server's files and the page's own inline script, by hash.
    digests = {
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _references(page).inline_scripts
    }
    assert set(policy["script-src"]) == {"'self'", *digests}
    assert policy["frame-ancestors"] == ["'none'"]


def test_swagger_ui_does_not_call_the_online_validator(client: TestClient) -> None:
    page = TestClient(client.app).get("/docs")

    assert '"validatorUrl": null' in page.text
