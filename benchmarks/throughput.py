"""(g) Throughput: 20 small concrete jobs submitted at once to two worker processes (`dendrite
worker --concurrency 2`, embedded storage). Jobs per minute, and where a job's time goes, from
the phase timings each job records (`timings` on GET /v1/jobs/{id})."""

import time
from collections import defaultdict
from datetime import datetime

from benchmarks import concrete
from benchmarks.harness import DATA, Figure, Run, split

EPOCHS = 20


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _measure(run: Run, name: str, count: int, **settings: str) -> tuple[float, str]:
    """Jobs per minute for `count` jobs submitted at once to two worker processes, and where a
    job's time goes (mean seconds per phase)."""
    with split(run.work / f"throughput-{name}", workers=2, **settings) as service:
        dataset_id = service.upload(DATA / "concrete_data.csv", "concrete")["id"]
        service.wait_worker_idle(settle=3 if run.quick else 12)  # both pool processes warm
        started = time.perf_counter()
        ids = [
            service.submit(concrete.concrete_body(dataset_id, EPOCHS))["id"] for _ in range(count)
        ]
        jobs = [service.wait_for(job_id, poll=0.1) for job_id in ids]
        seconds = time.perf_counter() - started
    failed = [job["id"] for job in jobs if job["status"] != "succeeded"]
    phases: dict[str, float] = defaultdict(float)
    for job in jobs:
        for phase, value in (job.get("timings") or {}).items():
            phases[phase] += value / count
        phases["queue wait"] += (_stamp(job["started_at"]) - _stamp(job["created_at"])) / count
        phases["running (started -> finished)"] += job["duration_seconds"] / count
    breakdown = ", ".join(f"{name} {value:.3f}" for name, value in phases.items())
    note = f"{seconds:.1f} s in all; mean seconds per job: {breakdown}"
    return count / seconds * 60, note + (f"; FAILED: {failed}" if failed else "")


def run(run: Run) -> None:
    count = 4 if run.quick else 20
    # The baseline: a fresh process (and TensorFlow import) for every job, as before reuse.
    fresh, fresh_note = _measure(run, "fresh", count, DENDRITE_WORKER_JOBS_PER_PROCESS="1")
    reused, note = _measure(run, "reused", count)
    run.notes["throughput_breakdown"] = note
    run.add(
        Figure(
            "g",
            f"throughput: {count} concrete jobs of {EPOCHS} epochs on 2 workers; {note}",
            reused,
            "jobs/min",
            goal="ratio >= 2",
            passed=reused >= 2 * fresh,
            baseline=fresh,
            baseline_name=f"a fresh process per job; {fresh_note}",
        )
    )
