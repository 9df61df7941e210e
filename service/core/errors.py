"""Domain errors. Each carries its HTTP status; one handler in `service.api.errors` renders them.

DendriteError
├── BadRequest (400)
├── Unauthorized (401, WWW-Authenticate: Bearer)
├── Forbidden (403: an admin's operation)
├── NotFound (404)
├── Conflict (409)
│   └── HasDependents (409, with the envelope's `dependents`)
├── PayloadTooLarge (413)
│   └── QuotaExceeded (413: the owner's storage quota)
├── UnsupportedMediaType (415)
├── InvalidInput (422)
├── TooManyRequests (429, Retry-After)
└── InsufficientStorage (507: a disk or the database is full)

`out_of_space` tells whether any exception (OSError, a database driver's error) means a full disk.
"""

import errno
from typing import Any


class DendriteError(Exception):
    status_code = 500
    kind = "internal_error"

    def __init__(
        self, detail: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers  # sent with the error response (e.g. Retry-After)
        self.extra: dict[str, Any] = {}  # members of the envelope besides error, detail, field


class BadRequest(DendriteError):
    status_code = 400
    kind = "bad_request"


class Unauthorized(DendriteError):
    status_code = 401
    kind = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DendriteError):
    status_code = 403
    kind = "forbidden"


class NotFound(DendriteError):
    status_code = 404
    kind = "not_found"


class Conflict(DendriteError):
    status_code = 409
    kind = "conflict"


class HasDependents(Conflict):
    """What the request would remove has others depending on it, listed in `dependents`."""

    def __init__(self, detail: str, dependents: dict[str, Any], field: str | None = None) -> None:
        super().__init__(detail, field)
        self.extra = {"dependents": dependents}


class PayloadTooLarge(DendriteError):
    status_code = 413
    kind = "payload_too_large"


class QuotaExceeded(PayloadTooLarge):
    kind = "quota_exceeded"


class UnsupportedMediaType(DendriteError):
    status_code = 415
    kind = "unsupported_media_type"


class InvalidInput(DendriteError):
    status_code = 422
    kind = "invalid_input"


class TooManyRequests(DendriteError):
    status_code = 429
    kind = "too_many_requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class InsufficientStorage(DendriteError):
    status_code = 507
    kind = "insufficient_storage"


INSUFFICIENT_STORAGE_DETAIL = (
    "the server has run out of storage space (a disk or the database is full); nothing of this "
    "request was saved. Try again later; the operator must free space (GET /readyz shows it)"
)
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # sqlite3's SQLITE_FULL: "database or disk is full"
_POSTGRESQL_DISK_FULL = "53100"  # SQLSTATE disk_full


def out_of_space(error: BaseException) -> bool:
    """Whether `error`, or an error it wraps (its cause, context, a driver's original error or
    an exception group's members), says a disk or the database is full."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:  # sqlite3.Error
            return True
        if getattr(current, "sqlstate", None) == _POSTGRESQL_DISK_FULL:  # psycopg.Error
            return True
        wrapped = [current.__cause__, current.__context__, getattr(current, "orig", None)]
        if isinstance(current, BaseExceptionGroup):
            wrapped.extend(current.exceptions)
        pending.extend(e for e in wrapped if isinstance(e, BaseException))
    return False
