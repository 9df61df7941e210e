"""(a) The course's concrete regression: a job through the API with a warm worker, against the
course's plain script in a fresh process (pandas -> normalize -> model.fit(validation_split=0.3)).
"""

import copy
import subprocess
import sys
import time

from benchmarks.harness import DATA, Figure, Run, Service, environment
from service.schemas import examples

PLAIN_SCRIPT = """
import sys
import keras
import pandas as pd

epochs = int(sys.argv[1])
frame = pd.read_csv({path!r})
x, y = frame.drop(columns="Strength"), frame["Strength"]
x = (x - x.mean()) / x.std()
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(50, activation="relu"),
                          keras.layers.Dense(50, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mean_squared_error")
history = model.fit(x, y, validation_split=0.3, epochs=epochs, verbose=0)
print(history.history["val_loss"][-1])
""".format(path=str(DATA / "concrete_data.csv"))


def plain_script(epochs: int) -> tuple[float, float]:
    """Seconds from start to finish of the course script in a fresh process, and its val_loss."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_SCRIPT, str(epochs)],
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, float(done.stdout.split()[-1])


def concrete_body(dataset_id: str, epochs: int) -> dict[str, object]:
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body["dataset_id"] = dataset_id
    body["training"]["epochs"] = epochs  # type: ignore[index]
    return body


def dataset(run: Run, service: Service) -> str:
    """The course file's dataset id in this service, uploaded on first use."""
    key = f"concrete_dataset@{service.base_url}"
    if key not in run.notes:
        run.notes[key] = service.upload(DATA / "concrete_data.csv", "concrete")["id"]
    return run.notes[key]


def model(run: Run, service: Service) -> str:
    """A trained concrete model's id: benchmark a's, or a short job's when a did not run."""
    if "concrete_model" not in run.notes:
        job = service.wait_for(service.submit(concrete_body(dataset(run, service), 5))["id"])
        run.notes["concrete_model"] = job["model_id"]
    return run.notes["concrete_model"]


def run(run: Run, service: Service) -> None:
    epochs = 5 if run.quick else 100
    dataset_id = dataset(run, service)
    service.wait_worker_idle(settle=2 if run.quick else 10)
    started = time.perf_counter()
    job = service.submit(concrete_body(dataset_id, epochs))
    job = service.wait_for(job["id"])
    api_seconds = time.perf_counter() - started
    plain_seconds, plain_val_loss = plain_script(epochs)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the concrete job ended {job['status']}: {job['error']}")
    val_loss = float(job["latest_metrics"]["val_loss"])
    ratio = api_seconds / plain_seconds
    run.add(
        Figure(
            "a",
            f"concrete job, {epochs} epochs, submit -> succeeded (warm worker)",
            api_seconds,
            "s",
            goal="ratio <= 0.33",
            passed=ratio <= 0.33,
            baseline=plain_seconds,
            baseline_name="plain course script, fresh process",
        )
    )
    run.add(
        Figure(
            "a",
            "concrete job, final val_loss",
            val_loss,
            "",
            goal="<= the plain script's",
            passed=val_loss <= plain_val_loss,
            baseline=plain_val_loss,
            baseline_name="plain script's final val_loss",
            note="the plain script validates on the file's last 30 % of rows, unshuffled",
        )
    )
    run.notes["concrete_model"] = job["model_id"]
