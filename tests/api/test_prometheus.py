"""GET /metrics: Prometheus text that a scraper parses, with request latency by route template,
jobs by status, queue depth, training time and epochs per second read from the database; served
with a key by default, or open, or not at all (DENDRITE_METRICS_EXPOSURE)."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.core import prometheus, queue
from service.core.config import get_settings
from service.core.orm import FINAL_STATUSES, EpochMetric, Job, JobStatus, utcnow
from tests.api.conftest import Upload, assert_envelope, bearer, concrete_job, create_key

FAMILIES = {
    "dendrite_http_request_duration_seconds": "histogram",
    "dendrite_jobs": "gauge",
    "dendrite_queue_depth": "gauge",
    "dendrite_job_training_seconds": "histogram",
    "dendrite_training_epochs_per_second": "gauge",
    "dendrite_dependency_up": "gauge",
}


@pytest.fixture(autouse=True)
def fresh_histogram() -> None:
    """The training-time histogram is kept in the process; each test's database starts empty."""
    prometheus.forget_training_seconds()


def scrape(client: TestClient) -> list[Sample]:
    """GET /metrics as a scraper does: with an API key as its bearer token."""
    with TestClient(client.app, headers=bearer(create_key("prometheus"))) as scraper:
        response = scraper.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def submit_jobs(client: TestClient, upload: Upload, count: int) -> list[str]:
    upload("concrete_data.csv", name="concrete")
    ids = []
    for _ in range(count):
        response = client.post("/v1/jobs", json=concrete_job("concrete"))
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def record_epochs(session: Session, job_id: str, status: JobStatus, seconds: list[float]) -> None:
    started = utcnow() - timedelta(minutes=5)
    finished = utcnow() if status in FINAL_STATUSES else None
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=status,
            started_at=started,
            heartbeat_at=utcnow(),
            worker="w1@host",
            finished_at=finished,
        )
    )
    for epoch, spent in enumerate(seconds, start=1):
        session.add(EpochMetric(job_id=job_id, epoch=epoch, metrics={"loss": 1.0}, seconds=spent))
    session.commit()


def test_metrics_need_a_key_by_default_and_list_every_family(client: TestClient) -> None:
    assert_envelope(TestClient(client.app).get("/metrics"), 401)  # no API key
    assert_envelope(TestClient(client.app, headers=bearer("dk_wrong")).get("/metrics"), 401)

    response = client.get("/metrics")

    assert response.status_code == 200, response.text
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert FAMILIES.items() <= families.items()


def test_metrics_open_or_off_as_set(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENDRITE_METRICS_EXPOSURE", "open")
    get_settings.cache_clear()
    assert TestClient(client.app).get("/metrics").status_code == 200  # no API key

    monkeypatch.setenv("DENDRITE_METRICS_EXPOSURE", "off")
    get_settings.cache_clear()
    assert_envelope(client.get("/metrics"), 404)


def test_training_time_counts_each_succeeded_job_once_across_scrapes(
    client: TestClient, upload: Upload, session: Session
) -> None:
    """Kept as jobs succeed, not re-read: a job already counted is not counted again, and one that
    succeeds between scrapes is added."""
    first, second = submit_jobs(client, upload, 2)
    record_epochs(session, first, JobStatus.succeeded, [2.0])
    name = "dendrite_job_training_seconds"
    assert value(scrape(client), f"{name}_count") == 1
    assert value(scrape(client), f"{name}_count") == 1

    record_epochs(session, second, JobStatus.succeeded, [20.0, 20.0])
    samples = scrape(client)
    assert value(samples, f"{name}_count") == 2
    assert value(samples, f"{name}_sum") == pytest.approx(42.0)
    assert value(samples, f"{name}_bucket", le="5.0") == 1
    assert value(samples, f"{name}_bucket", le="60.0") == 2


def test_request_latency_is_counted_by_route_template_method_and_status(
    client: TestClient,
) -> None:
    route = "/v1/jobs/{job_id}"
    before = value(
        scrape(client),
        "dendrite_http_request_duration_seconds_count",
        route=route,
        method="GET",
        status="404",
    )

    for _ in range(2):
        assert client.get("/v1/jobs/0123456789abcdef").status_code == 404
    assert client.get("/no/such/path").status_code == 404

    samples = scrape(client)
    count = value(
        samples, "dendrite_http_request_duration_seconds_count",
        route=route, method="GET", status="404",
    )  # fmt: skip
    assert count == (before or 0) + 2
    unmatched = value(
        samples, "dendrite_http_request_duration_seconds_count", route="unmatched", status="404"
    )
    assert unmatched is not None and unmatched >= 1
    assert not any("0123456789abcdef" in str(s.labels) for s in samples)  # ids never become labels


def test_jobs_by_status_and_queue_depth_follow_submitted_jobs(
    client: TestClient, upload: Upload, session: Session
) -> None:
    samples = scrape(client)
    assert value(samples, "dendrite_jobs", status="queued") == 0
    assert value(samples, "dendrite_queue_depth", queue="training") == 0

    first, _ = submit_jobs(client, upload, 2)
    client.post(f"/v1/jobs/{first}/cancel")

    samples = scrape(client)
    assert value(samples, "dendrite_jobs", status="queued") == 1
    assert value(samples, "dendrite_jobs", status="cancelled") == 1
    assert value(samples, "dendrite_jobs", status="running") == 0
    # Both messages were sent; the broker (the real on-disk queue) holds them until a worker takes
    # them, and the cancelled job's is dropped then.
    assert value(samples, "dendrite_queue_depth", queue="training") == 2
    assert value(samples, "dendrite_queue_depth", queue="training-gpu") == 0
    assert value(samples, "dendrite_dependency_up", dependency="database") == 1
    assert value(samples, "dendrite_dependency_up", dependency="broker") == 1


def test_training_time_and_epochs_per_second_come_from_recorded_epochs(
    client: TestClient, upload: Upload, session: Session
) -> None:
    done, running, _ = submit_jobs(client, upload, 3)
    record_epochs(session, done, JobStatus.succeeded, [3.0, 4.0])  # trained 7 s
    record_epochs(session, running, JobStatus.running, [0.25, 0.25, 0.5])  # 3 epochs in 1 s

    samples = scrape(client)

    name = "dendrite_job_training_seconds"
    assert value(samples, f"{name}_count") == 1
    assert value(samples, f"{name}_sum") == pytest.approx(7.0)
    assert value(samples, f"{name}_bucket", le="5.0") == 0
    assert value(samples, f"{name}_bucket", le="15.0") == 1
    assert value(samples, f"{name}_bucket", le="+Inf") == 1
    assert value(samples, "dendrite_training_epochs_per_second") == pytest.approx(3.0)
    assert value(samples, "dendrite_jobs", status="succeeded") == 1
    assert value(samples, "dendrite_jobs", status="running") == 1
    assert value(samples, "dendrite_jobs", status="queued") == 1


def test_metrics_with_unreachable_broker_report_it_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENDRITE_BROKER_URL", "redis://127.0.0.1:1/0")  # refuses at once
    get_settings.cache_clear()
    queue.celery.cache_clear()

    samples = scrape(client)

    assert value(samples, "dendrite_dependency_up", dependency="broker") == 0
    assert value(samples, "dendrite_queue_depth", queue="training") is None
    assert value(samples, "dendrite_jobs", status="queued") == 0  # the database still answers
