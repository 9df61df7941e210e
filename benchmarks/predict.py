"""(c) Predictions over HTTP with keep-alive, 1 row and 1,000 rows, against in-process
`predict_on_batch` on the same model file and against a server that calls `model.predict` per
request (the usual first attempt at serving a Keras model).
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from benchmarks import concrete
from benchmarks.harness import DATA, Figure, Run, Service, environment, free_port, percentile

# In a fresh process: load the model as dendrite does, then time predict_on_batch alone.
IN_PROCESS = """
import json, sys, time
import numpy as np
from service.ml import artifacts, inference

path, schema = sys.argv[1], json.loads(sys.argv[2])
rows = json.loads(open(sys.argv[3]).read())
repeats = int(sys.argv[4])
model = artifacts.load(__import__("pathlib").Path(path))
result = {}
for label, instances in rows.items():
    inputs = inference.inputs(schema, instances)
    for _ in range(20):
        model.predict_on_batch(inputs)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(inputs)
        times.append((time.perf_counter() - started) * 1000)
    result[label] = sorted(times)[len(times) // 2]
print(json.dumps(result))
"""

# A FastAPI server that answers each request with model.predict on a pandas frame.
PREDICT_PER_REQUEST_SERVER = """
import json, sys
import numpy as np, pandas as pd, uvicorn
from fastapi import FastAPI, Request
from service.ml import artifacts

path, schema, port = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
model = artifacts.load(__import__("pathlib").Path(path))
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    frame = pd.DataFrame((await request.json())["instances"])
    inputs = {f["input"]: frame[[f["name"]]].to_numpy("float32") for f in schema["features"]}
    return {"predictions": model.predict(inputs, verbose=0).tolist()}

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def rows(count: int) -> list[dict[str, Any]]:
    lines = (DATA / "concrete_data.csv").read_text().splitlines()
    header = [name.strip() for name in lines[0].split(",")]
    records = []
    for line in lines[1:]:
        values = [float(v) for v in line.split(",")]
        records.append({n: v for n, v in zip(header, values, strict=True) if n != "Strength"})
    return (records * (count // len(records) + 1))[:count]


def latencies(client: httpx2.Client, path: str, body: dict[str, Any], repeats: int) -> list[float]:
    """Milliseconds per request; the body is encoded once, so the client's JSON encoder (a few
    ms for 1,000 rows) is not counted against the server."""
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    for _ in range(max(5, repeats // 10)):
        client.post(path, content=content, headers=headers).raise_for_status()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.post(path, content=content, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def _per_request_server(model_file: Path, schema: dict[str, Any], repeats: int) -> float:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", PREDICT_PER_REQUEST_SERVER, str(model_file), json.dumps(schema),
         str(port)],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.post("/predict", json={"instances": rows(1)}).raise_for_status()
                    break
                except httpx2.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.3)
            return percentile(latencies(client, "/predict", {"instances": rows(1)}, repeats), 0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def right_after(run: Run, service: Service, steady_p50: float) -> None:
    """1-row predictions from a model whose job has just succeeded: the first request (it loads
    the model) and the next ones, while the worker that trained it moves on."""
    dataset_id = concrete.dataset(run, service)
    service.wait_worker_idle(settle=1 if run.quick else 5)
    job = service.wait_for(service.submit(concrete.concrete_body(dataset_id, 20))["id"], poll=0.02)
    path = f"/v1/models/{job['model_id']}/predict"
    content = json.dumps({"instances": rows(1)}).encode()
    headers = {"Content-Type": "application/json"}
    times = []
    for _ in range(50 if run.quick else 300):
        started = time.perf_counter()
        service.client.post(path, content=content, headers=headers).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    p50 = percentile(times[1:], 0.5)
    run.add(
        Figure(
            "c",
            f"predict 1 row right after its job succeeded, p50 of the next {len(times) - 1}",
            p50,
            "ms",
            goal="ratio <= 1.25",
            passed=p50 <= 1.25 * steady_p50,
            baseline=steady_p50,
            baseline_name="steady state p50 (above)",
            note=f"the first request, which loads the model: {times[0]:.1f} ms; p99 of the next: "
            f"{percentile(times[1:], 0.99):.1f} ms",
        )
    )


def open_inference(
    run: Run,
    service: Service,
    model_id: str,
    schema: dict[str, Any],
    v1_p50: float,
    repeats: int,
) -> None:
    """1-row inference through the Open Inference Protocol (`/v2/models/{name}/infer`) on the
    same model, registered under a name, against `/v1/.../predict`'s p50 above."""
    name = f"bench-{model_id[:8]}"
    service.client.post("/v1/registered-models", json={"name": name}).raise_for_status()
    service.client.post(
        f"/v1/registered-models/{name}/versions", json={"model_id": model_id}
    ).raise_for_status()
    (row,) = rows(1)
    body = {
        "inputs": [
            {"name": f["name"], "shape": [1, 1], "datatype": "FP32", "data": [row[f["name"]]]}
            for f in schema["features"]
        ]
    }
    times = latencies(service.client, f"/v2/models/{name}/infer", body, repeats)
    p50 = percentile(times, 0.5)
    run.add(
        Figure(
            "c",
            "Open Inference Protocol: infer 1 row over HTTP, p50",
            p50,
            "ms",
            goal="ratio <= 1.2",
            passed=p50 <= 1.2 * v1_p50,
            baseline=v1_p50,
            baseline_name="/v1 predict 1 row, p50 (above)",
            note=f"p99 {percentile(times, 0.99):.2f} ms",
        )
    )


def run(run: Run, service: Service) -> None:
    model_id = concrete.model(run, service)
    model = service.client.get(f"/v1/models/{model_id}").json()
    model_file = run.work / "concrete.keras"
    model_file.write_bytes(service.client.get(f"/v1/models/{model_id}/download").content)
    schema = model["input_schema"]
    path = f"/v1/models/{model_id}/predict"
    repeats = 50 if run.quick else 1000
    # Measured in steady state: not while the worker's next pool process imports TensorFlow
    # (seconds of both cores, right after a job ends).
    service.wait_worker_idle(settle=1 if run.quick else 5)
    one = latencies(service.client, path, {"instances": rows(1)}, repeats)
    thousand = latencies(service.client, path, {"instances": rows(1000)}, max(20, repeats // 10))
    rows_file = run.work / "rows.json"
    rows_file.write_text(json.dumps({"1": rows(1), "1000": rows(1000)}))
    in_process = json.loads(
        subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(model_file), json.dumps(schema),
             str(rows_file), str(repeats)],
            env=environment(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )  # fmt: skip
    per_request = _per_request_server(model_file, schema, max(20, repeats // 5))
    p50, p99 = percentile(one, 0.5), percentile(one, 0.99)
    run.add(
        Figure(
            "c",
            "predict 1 row over HTTP, p50",
            p50,
            "ms",
            goal="<= 2 ms",
            passed=p50 <= 2,
            baseline=in_process["1"],
            baseline_name="in-process predict_on_batch",
        )
    )
    run.add(
        Figure("c", "predict 1 row over HTTP, p99", p99, "ms", goal="<= 10 ms", passed=p99 <= 10)
    )
    run.add(
        Figure(
            "c",
            "predict 1 row over HTTP, p50, against a model.predict-per-request server",
            p50,
            "ms",
            goal="ratio <= 1/15 (15x faster)",
            passed=p50 * 15 <= per_request,
            baseline=per_request,
            baseline_name="model.predict per request, p50",
        )
    )
    right_after(run, service, percentile(one, 0.5))
    open_inference(run, service, model_id, schema, percentile(one, 0.5), repeats)
    p50_1000 = percentile(thousand, 0.5)
    run.add(
        Figure(
            "c",
            "predict 1,000 rows over HTTP, p50",
            p50_1000,
            "ms",
            goal="<= 15 ms",
            passed=p50_1000 <= 15,
            baseline=in_process["1000"],
            baseline_name="in-process predict_on_batch",
        )
    )
