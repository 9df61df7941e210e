"""(b) The course's MNIST network (Flatten -> Dense(784, relu) -> Dense(100, relu) -> softmax,
adam, batch 32, 10 epochs) through the API, against the course's plain script in a fresh process.

By default the data is tests/data/mnist_small.npz (the first 3,000 training and 1,000 test
images); `--mnist PATH` takes the full file. The 0.977 test-accuracy goal is for full MNIST.
"""

import copy
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import Figure, Run, Service, environment
from service.schemas import examples

PLAIN_SCRIPT = """
import sys
import keras
import numpy as np

path, epochs = sys.argv[1], int(sys.argv[2])
data = np.load(path)
x_train = data["x_train"].reshape(len(data["x_train"]), -1).astype("float32") / 255
x_test = data["x_test"].reshape(len(data["x_test"]), -1).astype("float32") / 255
y_train = keras.utils.to_categorical(data["y_train"])
y_test = keras.utils.to_categorical(data["y_test"])
pixels = x_train.shape[1]
model = keras.Sequential([keras.Input((pixels,)), keras.layers.Dense(pixels, activation="relu"),
                          keras.layers.Dense(100, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=epochs, verbose=0)
print(model.evaluate(x_test, y_test, verbose=0)[1])
"""


def plain_script(path: Path, epochs: int) -> tuple[float, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_SCRIPT, str(path), str(epochs)],
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, float(done.stdout.split()[-1])


def run(run: Run, service: Service) -> None:
    epochs = 1 if run.quick else 10
    full = len(__import__("numpy").load(run.mnist_path)["y_train"]) >= 60_000
    dataset = service.upload(run.mnist_path, "mnist")
    body = copy.deepcopy(examples.MNIST_CLASSIFIER)
    body["dataset_id"] = dataset["id"]
    body["training"]["epochs"] = epochs
    service.wait_worker_idle(settle=2 if run.quick else 10)
    started = time.perf_counter()
    job = service.wait_for(service.submit(body)["id"], poll=0.05)
    api_seconds = time.perf_counter() - started
    plain_seconds, plain_accuracy = plain_script(run.mnist_path, epochs)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the MNIST job ended {job['status']}: {job['error']}")
    model = service.client.get(f"/v1/models/{job['model_id']}").json()
    accuracy = float(model["test_metrics"]["accuracy"])
    which = "full MNIST (60,000/10,000)" if full else f"{run.mnist_path.name} (3,000/1,000 subset)"
    ratio = api_seconds / plain_seconds
    run.add(
        Figure(
            "b",
            f"MNIST job, {epochs} epochs on {which}, submit -> succeeded",
            api_seconds,
            "s",
            goal="ratio <= 0.8",
            passed=ratio <= 0.8,
            baseline=plain_seconds,
            baseline_name="plain course script, fresh process",
        )
    )
    run.add(
        Figure(
            "b",
            "MNIST job, test accuracy",
            accuracy,
            "",
            goal=">= 0.977 (full MNIST)",
            passed=accuracy >= 0.977 if full else None,
            baseline=plain_accuracy,
            baseline_name="plain script's test accuracy",
            note="" if full else "a 3,000-image subset cannot reach it; run with --mnist PATH",
        )
    )
