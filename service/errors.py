"""Domain errors. Each carries its HTTP status; one handler in `service.api.errors` renders them.

DendriteError
├── BadRequest (400)
├── NotFound (404)
├── Conflict (409)
├── PayloadTooLarge (413)
├── UnsupportedMediaType (415)
└── InvalidInput (422)
"""


class DendriteError(Exception):
    status_code = 500
    kind = "internal_error"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class BadRequest(DendriteError):
    status_code = 400
    kind = "bad_request"


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
