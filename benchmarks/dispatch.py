"""(d) Dispatch: from submit until a warm worker has claimed the job (`running`), embedded (SQLite
and the on-disk broker) and on the stack (PostgreSQL and Redis).

The figure is the job's own `started_at - created_at` (both stamped by the same machine's clock):
what a poller sees, without the poll interval. The client-side time to see `running` is noted.
"""

import time
from datetime import datetime

from benchmarks import concrete
from benchmarks.harness import Figure, Run, Service, percentile, split, stack_settings


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(run: Run, service: Service, samples: int) -> tuple[float, float]:
    """Median server-side and client-side dispatch latency in ms over `samples` jobs."""
    dataset_id = concrete.dataset(run, service)
    server, client = [], []
    for _ in range(samples):
        service.wait_worker_idle(settle=3 if run.quick else 8)  # a warm pool process waits
        started = time.perf_counter()
        job = service.submit(concrete.concrete_body(dataset_id, 1))
        seen = service.wait_for(job["id"], ("running", "succeeded", "failed"), poll=0.002)
        client.append((time.perf_counter() - started) * 1000)
        server.append((_stamp(seen["started_at"]) - _stamp(seen["created_at"])) * 1000)
        service.wait_for(job["id"])
    return percentile(server, 0.5), percentile(client, 0.5)


def run_embedded(run: Run, service: Service) -> None:
    server, client = measure(run, service, 1 if run.quick else 5)
    run.add(
        Figure(
            "d",
            "dispatch embedded (SQLite, on-disk broker): submit -> running, median",
            server,
            "ms",
            goal="<= 150 ms",
            passed=server <= 150,
            note=f"seen by a client polling every 2 ms: {client:.0f} ms",
        )
    )


def run_stack(run: Run) -> None:
    settings = stack_settings("dendrite_bench")
    if isinstance(settings, str):
        run.add(Figure("d", "dispatch on Redis", None, "ms", goal="<= 50 ms", note=settings))
        return
    with split(run.work / "stack", workers=1, **settings) as service:
        server, client = measure(run, service, 1 if run.quick else 5)
    run.add(
        Figure(
            "d",
            "dispatch on the stack (PostgreSQL, Redis): submit -> running, median",
            server,
            "ms",
            goal="<= 50 ms",
            passed=server <= 50,
            note=f"seen by a client polling every 2 ms: {client:.0f} ms",
        )
    )
