"""(f) The history of a 10,000-epoch job: all of it, downsampled (`max_points`) and one page
(`after_epoch` + `limit`). The epochs are written straight into the database (training 10,000
epochs would measure training, not serving)."""

import random
import time

from sqlalchemy import update
from sqlalchemy.orm import Session

from benchmarks import concrete
from benchmarks.harness import Figure, Run, Service, percentile
from service.core.db import make_engine
from service.core.orm import EpochMetric, Job


def _fill(service: Service, job_id: str, epochs: int) -> None:
    engine = make_engine(f"sqlite:///{service.folder / 'data' / 'dendrite.db'}")
    rng = random.Random(0)
    rows = [
        {
            "job_id": job_id,
            "epoch": epoch,
            "seconds": 0.01,
            "metrics": {
                "loss": rng.uniform(10, 100),
                "mae": rng.uniform(1, 10),
                "val_loss": rng.uniform(10, 100),
                "val_mae": rng.uniform(1, 10),
            },
        }
        for epoch in range(2, epochs + 1)
    ]
    with Session(engine) as session:
        session.execute(EpochMetric.__table__.insert(), rows)
        session.execute(update(Job).where(Job.id == job_id).values(epochs=epochs, epoch=epochs))
        session.commit()
    engine.dispose()


def _time(service: Service, path: str, params: dict[str, int], repeats: int) -> tuple[float, int]:
    times = []
    count = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = service.client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        count = len(response.json()["epochs"])
    return percentile(times, 0.5), count


def run(run: Run, service: Service) -> None:
    epochs = 500 if run.quick else 10_000
    job = service.submit(concrete.concrete_body(concrete.dataset(run, service), 1))
    service.wait_for(job["id"])
    _fill(service, job["id"], epochs)
    path = f"/v1/jobs/{job['id']}/history"
    repeats = 5 if run.quick else 20
    whole, whole_rows = _time(service, path, {}, repeats)
    sampled, sampled_rows = _time(service, path, {"max_points": 500}, repeats)
    page, page_rows = _time(service, path, {"after_epoch": epochs // 2, "limit": 500}, repeats)
    note = f"the whole history ({whole_rows} rows): {whole:.0f} ms"
    run.add(
        Figure(
            "f",
            f"history of a {epochs}-epoch job, downsampled to {sampled_rows} rows, p50",
            sampled,
            "ms",
            goal="<= 100 ms",
            passed=sampled <= 100,
            note=note,
        )
    )
    run.add(
        Figure(
            "f",
            f"history of a {epochs}-epoch job, one page of {page_rows} rows after epoch "
            f"{epochs // 2}, p50",
            page,
            "ms",
            goal="<= 100 ms",
            passed=page <= 100,
        )
    )
