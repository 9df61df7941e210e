"""(i) Batch scoring: a worker scores 10^5 and 10^6 concrete-shaped rows (synthetic, from the
concrete file's column ranges) from a CSV into a CSV; its peak memory for both, and its rows/s
against the ceiling of the same model's `predict_on_batch` over the same rows already in memory,
in a fresh process (no reading, checking or writing), measured in the same run.

Each batch prediction runs in a fresh worker process (DENDRITE_WORKER_JOBS_PER_PROCESS=1), whose
resident memory is sampled every 20 ms while it runs: its peak is the job's peak.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import concrete
from benchmarks.harness import (
    DATA,
    Figure,
    Run,
    Service,
    descendants,
    environment,
    rss_bytes,
    split,
)

CHUNK_ROWS = 10_000

# In a fresh process: the model as dendrite loads it, predict_on_batch over the rows in chunks
# of CHUNK_ROWS (the rows converted to the model's inputs before the clock starts).
CEILING = """
import json, sys, time
import numpy as np, pandas as pd
from service.ml import artifacts, builder

path, schema, csv, chunk = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
model = artifacts.load(__import__("pathlib").Path(path))
frame = pd.read_csv(csv)
inputs = [
    builder.model_inputs({f["input"]: frame[f["name"]].to_numpy("float32")[s : s + chunk, None]
                          for f in schema["features"]})
    for s in range(0, len(frame), chunk)
]
model.predict_on_batch(inputs[0])
started = time.perf_counter()
for part in inputs:
    model.predict_on_batch(part)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(frame)}))
"""


def synthetic(rows: int, path: Path) -> Path:
    """`rows` rows shaped like the concrete data: each column uniform over its range."""
    source = pd.read_csv(DATA / "concrete_data.csv", skipinitialspace=True)
    generator = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            name: generator.uniform(source[name].min(), source[name].max(), rows).round(2)
            for name in source.columns
        }
    )
    frame.to_csv(path, index=False)
    return path


class PeakMemory(threading.Thread):
    """The largest resident memory of any worker child process while it runs."""

    def __init__(self, service: Service) -> None:
        super().__init__(daemon=True)
        self.parent = service.processes["worker"].pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            for pid in descendants({self.parent}) - {self.parent}:
                try:
                    self.peak = max(self.peak, rss_bytes(pid))
                except OSError:
                    continue

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def score(service: Service, model_id: str, dataset_id: str) -> tuple[dict[str, object], int]:
    service.wait_worker_idle(settle=3)
    memory = PeakMemory(service)
    memory.start()
    response = service.client.post(
        "/v1/batch-predictions",
        json={"model": model_id, "dataset_id": dataset_id, "chunk_rows": CHUNK_ROWS},
    )
    response.raise_for_status()
    batch_id = response.json()["id"]
    while True:
        batch = service.client.get(f"/v1/batch-predictions/{batch_id}").json()
        if batch["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    peak = memory.stop()
    if batch["status"] != "succeeded":
        raise RuntimeError(f"batch prediction {batch['status']}: {batch['error']}")
    return batch, peak


def run(run: Run) -> None:
    sizes = (1_000, 10_000) if run.quick else (100_000, 1_000_000)
    folder = run.work / "scoring"
    with split(folder, workers=1, DENDRITE_WORKER_JOBS_PER_PROCESS="1") as service:
        dataset = service.upload(DATA / "concrete_data.csv", "concrete")
        job = service.wait_for(service.submit(concrete.concrete_body(dataset["id"], 10))["id"])
        model = service.client.get(f"/v1/models/{job['model_id']}").json()
        measured: dict[int, tuple[float, int, Path]] = {}
        for rows in sizes:
            path = synthetic(rows, folder / f"concrete-{rows}.csv")
            uploaded = service.upload(path, f"concrete-{rows}")
            batch, peak = score(service, model["id"], uploaded["id"])
            measured[rows] = (float(batch["duration_seconds"]), peak, path)
        model_file = folder / "model.keras"
        model_file.write_bytes(service.client.get(f"/v1/models/{model['id']}/download").content)
    small, large = sizes
    memory_ratio = measured[large][1] / measured[small][1]
    run.add(
        Figure(
            "i",
            f"batch scoring worker peak memory, {large:,} rows",
            measured[large][1] / 2**20,
            "MiB",
            goal="within 20 % of the small file's",
            passed=abs(memory_ratio - 1) < 0.2,
            baseline=measured[small][1] / 2**20,
            baseline_name=f"{small:,} rows",
            note=f"chunks of {CHUNK_ROWS:,} rows; a fresh worker process per job",
        )
    )
    ceiling = subprocess.run(
        [
            sys.executable,
            "-c",
            CEILING,
            str(model_file),
            json.dumps(model["input_schema"]),
            str(measured[large][2]),
            str(CHUNK_ROWS),
        ],
        env=environment(),
        check=True,
        capture_output=True,
        text=True,
    )
    timed = json.loads(ceiling.stdout.strip().splitlines()[-1])
    run.add(
        Figure(
            "i",
            f"batch scoring throughput, {large:,} rows CSV -> CSV",
            large / measured[large][0],
            "rows/s",
            baseline=timed["rows"] / timed["seconds"],
            baseline_name="predict_on_batch on the rows in memory, same model, fresh process",
            note="dendrite reads, checks and writes each row too; job time from start to end",
        )
    )
