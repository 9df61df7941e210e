"""Behaviour suites (hostile input, limits, isolation between owners, faults, load, fair share)
use the API tests' clients and the end-to-end tests' real processes: their fixtures, shared."""

from tests.api.conftest import admin_client, client, other_client, upload
from tests.e2e.conftest import embedded, stack

__all__ = ["admin_client", "client", "embedded", "other_client", "stack", "upload"]
