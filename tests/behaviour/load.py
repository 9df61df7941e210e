"""A bounded load generator: N concurrent clients poll jobs and upload small datasets.

Used by tests/behaviour/test_load.py (which asserts zero errors) and printed in its output
(requests per second and latency percentiles are reported, never asserted).
"""

import asyncio
import io
import random
import time
from dataclasses import dataclass, field

import httpx2


@dataclass
class LoadReport:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s = "
            f"{self.requests / max(self.seconds, 1e-9):.0f} req/s; "
            f"p50 {self.percentile(0.50):.1f} ms, p99 {self.percentile(0.99):.1f} ms; "
            f"errors {len(self.errors)}"
        )


def _small_csv(rng: random.Random) -> bytes:
    rows = ["a,b,label"] + [
        f"{rng.random():.4f},{rng.randint(0, 9)},{rng.choice('xyz')}" for _ in range(20)
    ]
    return "\n".join(rows).encode()


async def _client_loop(
    client: httpx2.AsyncClient, job_ids: list[str], deadline: float, seed: int, report: LoadReport
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        choice = rng.random()
        started = time.perf_counter()
        try:
            if choice < 0.6:
                response = await client.get(f"/v1/jobs/{rng.choice(job_ids)}")
            elif choice < 0.8:
                response = await client.get("/v1/jobs", params={"limit": 20})
            else:
                files = {"file": ("small.csv", io.BytesIO(_small_csv(rng)), "text/csv")}
                response = await client.post("/v1/datasets", files=files)
            ok = response.status_code < 400
            request = response.request
            detail = f"{request.method} {request.url.path}: {response.status_code}"
        except httpx2.HTTPError as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        report.requests += 1
        if not ok:
            report.errors.append(detail)


async def run_load(
    base_url: str, headers: dict[str, str], job_ids: list[str], clients: int, seconds: float
) -> LoadReport:
    report = LoadReport()
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as client:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(_client_loop(client, job_ids, deadline, seed, report) for seed in range(clients))
        )
        report.seconds = time.monotonic() - started
    return report
