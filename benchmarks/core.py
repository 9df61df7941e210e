"""Issue 2's figures, measured against a baseline in the same run (the machine is shared).

Starts `dendrite serve` in a temporary data directory, then reports:
- the course's concrete job, submit -> succeeded through the API with a warm worker, against the
  course's plain script (pandas -> normalize -> model.fit(validation_split=0.3)) in a fresh
  process, as a ratio;
- single-row predictions over HTTP with keep-alive, p50 and p99.

Run: .venv/bin/python benchmarks/core.py
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from service import examples  # noqa: E402

PLAIN_SCRIPT = f"""
import pandas as pd, keras
frame = pd.read_csv({str(ROOT / "tests/data/concrete_data.csv")!r})
x, y = frame.drop(columns="Strength"), frame["Strength"]
x = (x - x.mean()) / x.std()
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(50, activation="relu"),
                          keras.layers.Dense(50, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mean_squared_error")
history = model.fit(x, y, validation_split=0.3, epochs=100, verbose=0)
print(history.history["val_loss"][-1])
"""


def main() -> None:
    data = Path(tempfile.mkdtemp()) / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    env |= {"DENDRITE_DATA_DIR": str(data), "TF_CPP_MIN_LOG_LEVEL": "3"}
    dendrite = [sys.executable, "-m", "service.cli"]
    key = (
        subprocess.run(
            [*dendrite, "keys", "create", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [*dendrite, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx2.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=120, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.5)
        with open(ROOT / "tests/data/concrete_data.csv", "rb") as handle:
            client.post("/v1/datasets", files={"file": handle}, data={"name": "concrete"})
        time.sleep(10)  # let the worker's pool process finish importing TensorFlow
        started = time.perf_counter()
        job = client.post("/v1/jobs", json=examples.CONCRETE_REGRESSION).json()
        while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            time.sleep(0.02)
        api_seconds = time.perf_counter() - started
        started = time.perf_counter()
        plain = subprocess.run(
            [sys.executable, "-c", PLAIN_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        plain_seconds = time.perf_counter() - started
        print(
            f"concrete job through the API: {api_seconds:.2f} s ({job['status']}), "
            f"val_loss {job['latest_metrics']['val_loss']:.1f}"
        )
        print(
            f"plain course script, fresh process: {plain_seconds:.2f} s, "
            f"val_loss {float(plain.stdout):.1f}"
        )
        print(f"ratio API / plain: {api_seconds / plain_seconds:.2f}")
        path = f"/v1/models/{job['model_id']}/predict"
        for _ in range(20):
            client.post(path, json=examples.CONCRETE_PREDICT)
        latencies = []
        for _ in range(300):
            started = time.perf_counter()
            client.post(path, json=examples.CONCRETE_PREDICT)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        print(f"predict 1 row over HTTP: p50 {latencies[150]:.2f} ms, p99 {latencies[296]:.2f} ms")
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
