"""Domain errors. Each carries its HTTP status; one handler in `service.api.errors` renders them.

DendriteError
├── BadRequest (400)
├── Unauthorized (401, WWW-Authenticate: Bearer)
├── NotFound (404)
├── Conflict (409)
├── PayloadTooLarge (413)
├── UnsupportedMediaType (415)
├── InvalidInput (422)
└── TooManyRequests (429, Retry-After)
"""


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


class BadRequest(DendriteError):
    status_code = 400
    kind = "bad_request"


class Unauthorized(DendriteError):
    status_code = 401
    kind = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class NotFound(DendriteError):
    status_code = 404
    kind = "not_found"


class Conflict(DendriteError):
    status_code = 409
    kind = "conflict"


class PayloadTooLarge(DendriteError):
    status_code = 413
    kind = "payload_too_large"


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
