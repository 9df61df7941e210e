"""(e) A 200 MB CSV upload to a fresh `dendrite api`: how much the API process's resident memory
grows at its peak, and how long until the schema comes back (the 201 carries it).

The file is numeric like the course's concrete table (9 columns, 2 decimals), generated once per
run with a fixed seed.
"""

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.harness import Figure, Run, rss_bytes, split

COLUMNS = ["Cement", "Slag", "Ash", "Water", "Plasticizer", "Coarse", "Fine", "Age", "Strength"]


def make_csv(path: Path, size_bytes: int) -> Path:
    """A numeric CSV of about `size_bytes` bytes."""
    rng = np.random.default_rng(0)
    rows = max(100, size_bytes // 62)  # about 62 bytes per row
    with pacsv.CSVWriter(path, pa.schema([(c, pa.float64()) for c in COLUMNS])) as writer:
        for start in range(0, rows, 500_000):
            count = min(500_000, rows - start)
            columns = [np.round(rng.uniform(0, 1000, count), 2) for _ in COLUMNS]
            writer.write_table(pa.table(dict(zip(COLUMNS, columns, strict=True))))
    return path


class PeakMemory(threading.Thread):
    """Samples a process's RSS every few milliseconds until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, rss_bytes(pid), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def run(run: Run) -> None:
    size = 2_000_000 if run.quick else 200_000_000
    csv_file = make_csv(run.work / "upload.csv", size)
    with split(run.work / "upload", workers=0) as service:
        pid = service.processes["api"].pid
        service.client.get("/v1/datasets").raise_for_status()  # imports and connections done
        before = rss_bytes(pid)
        sampler = PeakMemory(pid)
        sampler.start()
        started = time.perf_counter()
        dataset = service.upload(csv_file, "big")
        seconds = time.perf_counter() - started
        growth = (sampler.stop() - before) / 2**20
    megabytes = csv_file.stat().st_size / 1e6
    run.add(
        Figure(
            "e",
            f"{megabytes:.0f} MB CSV upload ({dataset['rows']:,} rows): API peak RSS growth",
            growth,
            "MiB",
            goal="<= 100 MiB",
            passed=growth <= 100,
            note=f"RSS before the upload: {before / 2**20:.0f} MiB",
        )
    )
    run.add(
        Figure(
            "e",
            f"{megabytes:.0f} MB CSV upload: schema ready (upload -> 201 with the schema)",
            seconds,
            "s",
            goal="<= 5 s",
            passed=seconds <= 5,
        )
    )
