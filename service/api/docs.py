"""/docs (Swagger UI) and /redoc, served with the copies of their scripts and styles that the
fastapi-offline package ships (at /docs-assets): the pages work where no CDN can be reached, and
their Content-Security-Policy lets the browser fetch nothing from another host."""

import base64
import hashlib
import importlib.resources
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS_URL = "/docs-assets"
ASSETS_DIR = importlib.resources.files("fastapi_offline") / "static"

# Swagger UI's validator badge would send the whole document to validator.swagger.io.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (create the app with docs_url and redoc_url None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return _with_policy(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = policy(bytes(page.body).decode())
    return page


def policy(html: str) -> str:
    """Scripts from this server and the page's own inline script (by hash); styles from this
    server and inline (both UIs add style elements as they render); requests to this server."""
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in inline
    ]
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            # Icons inlined in the stylesheets. ReDoc's footer logo, which it would fetch from its
            # CDN, is blocked; ReDoc then leaves it out.
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",  # the OpenAPI document, and Swagger UI's "Try it out"
            "worker-src blob:",  # ReDoc's search index
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
