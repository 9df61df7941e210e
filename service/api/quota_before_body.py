"""An upload that cannot fit in its owner's storage quota is refused from its Content-Length
(413 quota_exceeded), before the multipart parser spools its body to disk.

`datasets.create` counts the bytes themselves as they are stored, for a body sent without a
Content-Length (chunked). Runs after `KeyBeforeBody`, so the key is known (and cached) here.
"""

import anyio
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service import datasets, keys
from service.api.deps import principal_for
from service.api.errors import envelope
from service.api.limits import MULTIPART_OVERHEAD, UPLOAD_PATH
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import DendriteError


class QuotaBeforeBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") == UPLOAD_PATH
        ):
            headers = Headers(scope=scope)
            declared = headers.get("content-length", "")
            # The least the file can be: the body less room for the multipart framing.
            size = int(declared) - MULTIPART_OVERHEAD if declared.isdigit() else 0
            if size > 0:
                try:
                    await self._refuse_past_quota(headers, size)
                except DendriteError as error:
                    await envelope(
                        error.status_code, error.kind, error.detail, error.field, error.headers
                    )(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _refuse_past_quota(self, headers: Headers, size: int) -> None:
        if get_settings().max_storage_bytes_per_owner == 0:
            return
        principal = keys.LOCAL
        if get_settings().auth_enabled:
            scheme, token = get_authorization_scheme_param(headers.get("authorization"))
            principal = await principal_for(token if scheme.lower() == "bearer" and token else None)
        await anyio.to_thread.run_sync(_check_quota, principal, size)


def _check_quota(principal: keys.Principal, size: int) -> None:
    with session_scope() as session:
        datasets.check_quota(session, principal, size)
