"""The client library's generated part follows the API: `clients/python/openapi.json` is the app's
OpenAPI document and `dendrite_client/models.py` is what the generator makes of it. A change to
the API that was not regenerated (`python scripts/generate_client.py`) fails here, in CI."""

import subprocess
import sys
from pathlib import Path

from dendrite_client import errors

ROOT = Path(__file__).resolve().parent.parent.parent


def test_generated_client_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_client.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_error_envelope_becomes_the_exception_for_its_status() -> None:
    body = {"error": "not_found", "detail": "model 'x' does not exist", "field": "model_id"}

    error = errors.for_status(404, body)

    assert isinstance(error, errors.NotFound) and isinstance(error, errors.DendriteError)
    assert (error.status, error.kind, error.field) == (404, "not_found", "model_id")
    assert str(error) == "404 not_found (model_id): model 'x' does not exist"
    limited = errors.for_status(429, {"error": "rate_limited", "detail": "slow down"}, "7")
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 7.0
    assert isinstance(errors.for_status(422, {"error": "invalid_input"}), errors.InvalidInput)
    assert isinstance(errors.for_status(503, "down"), errors.ServerError)
