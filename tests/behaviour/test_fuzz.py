"""Fuzzing: schemathesis sends generated requests (valid and invalid) to every operation in
/openapi.json, in process, with a valid API key. No response may be a 5xx, and every response must
match the schema the operation declares. No worker runs here, so POST /v1/jobs only queues.

The course datasets and one queued job exist during each operation's cases, and path parameters
are often their ids (or the datasets' names), so the cases reach past the lookups.
"""

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.main import create_app
from tests.api.conftest import concrete_job, upload_file

# Fuzzing-phase cases per operation; the examples and coverage phases add their own (about 1,900
# cases in all, well under 2 minutes on 2 cores).
MAX_EXAMPLES = 100

# Built at import without serving a request (pytest 9 breaks schemathesis' fixture-based loader,
# and an app that ran its lifespan here would cache the wrong database); the cases go to the app of
# the `client` fixture, with its test database and API key.
schema = schemathesis.openapi.from_dict(create_app().openapi())
# NUL characters too: PostgreSQL (the CI database) refuses them in text, SQLite does not.
schema.config.generation.update(allow_x00=True)

# Path parameter -> ids of things that exist while an operation is fuzzed (set by `existing`).
KNOWN: dict[str, list[str]] = {}
# "METHOD /path" -> status code -> responses, for the summary at the end of the run.
SENT: dict[str, Counter[int]] = defaultdict(Counter)


@schema.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    SENT[case.operation.label][response.status_code] += 1


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not SENT:
        return
    total = sum(sum(statuses.values()) for statuses in SENT.values())
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line(f"\nfuzzing: {total} cases over {len(SENT)} operations")
        for label, statuses in sorted(SENT.items()):
            reporter.write_line(f"  {label}: {dict(sorted(statuses.items()))}")


@schema.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    """Half the time, swap a generated id for one that exists."""

    def swap(generated: Any, pick: int) -> Any:
        if not isinstance(generated, dict):
            return generated
        for name, ids in KNOWN.items():
            if name in generated and ids:
                generated = {**generated, name: ids[pick % len(ids)]}
        return generated

    return st.one_of(strategy, st.builds(swap, strategy, st.integers(0, 7)))


@pytest.fixture
def existing(client: TestClient) -> Iterator[None]:
    """The datasets the documented examples name, and a queued job."""
    datasets = []
    for filename, name in (("concrete_data.csv", "concrete"), ("mnist_small.npz", "mnist")):
        response = upload_file(client, filename, name=name)
        assert response.status_code == 201, response.text
        datasets += [response.json()["id"], name]
    job = client.post("/v1/jobs", json=concrete_job("concrete"))
    assert job.status_code == 202, job.text
    KNOWN.update(dataset_id=datasets, job_id=[job.json()["id"]])
    yield
    KNOWN.clear()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    # `client` is set up once per operation, not per case: the cases share its app and key.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzz_operation_answers_without_5xx_or_schema_violations(
    case: Any, client: TestClient, existing: None
) -> None:
    case.call_and_validate(
        app=client.app,
        headers={"Authorization": client.headers["Authorization"]},
        checks=[not_a_server_error, response_schema_conformance],
    )
