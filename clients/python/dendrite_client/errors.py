"""dendrite's error envelope (`{"error", "detail", "field"?}`) as exceptions, one class per kind of
answer, so that a caller catches what it can handle (`except NotFound:`) and reads `detail`."""

from typing import Any


class DendriteError(Exception):
    """An answer of 4xx/5xx: `status`, the envelope's `error` kind, `detail` and `field`."""

    def __init__(self, status: int, body: Any) -> None:
        envelope = body if isinstance(body, dict) else {}
        self.status = status
        self.kind: str = str(envelope.get("error", "error"))
        self.detail: str = str(envelope.get("detail") or envelope.get("error") or body)
        self.field: str | None = envelope.get("field")
        self.body = body
        where = f" ({self.field})" if self.field else ""
        super().__init__(f"{status} {self.kind}{where}: {self.detail}")


class InvalidInput(DendriteError):
    """400 or 422: the request is wrong; `field` says where."""


class Unauthorized(DendriteError):
    """401: no key, or one that is unknown or revoked."""


class Forbidden(DendriteError):
    """403."""


class NotFound(DendriteError):
    """404: no such thing, or another owner's."""


class Conflict(DendriteError):
    """409: the thing's state forbids it (a job that is not done, a name taken, ...)."""


class TooLarge(DendriteError):
    """413: a body over the server's limits."""


class RateLimited(DendriteError):
    """429: over a quota; `retry_after` seconds to wait, when the server says."""

    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        super().__init__(status, body)
        self.retry_after = retry_after


class ServerError(DendriteError):
    """5xx."""


_BY_STATUS: dict[int, type[DendriteError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidInput,
}


def for_status(status: int, body: Any, retry_after: str | None = None) -> DendriteError:
    """The exception for an answer's status and body."""
    if status == 429:
        return RateLimited(status, body, float(retry_after) if retry_after else None)
    if status >= 500:
        return ServerError(status, body)
    return _BY_STATUS.get(status, DendriteError)(status, body)
