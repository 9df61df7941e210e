"""The project's real docker-compose.yml on a real Docker engine, driven as an operator would.

`docker-compose up -d --build` (Compose 1.29, the v1 spelling this machine has) with the real
compose file; `stack.override.yml` only swaps the build argument for the local Python base (the
images it names are made by conftest.py: postgres:16 and redis:7 are local stand-ins for the
public images, which this machine cannot pull). Then, through the published port: a key from
`docker-compose exec -T api dendrite keys create`, the concrete data uploaded, the course network
trained and asked for predictions; two workers, the one running a second job `docker kill`ed, the
job finished by the other; the API container restarted and still predicting; `down -v`.

The tests run in order on one stack and share what they made (key, model). Figures (build time,
image size, start-up, the kill's timeline) go to tests/stack/logs/figures.json.
"""

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest

from .conftest import DOCKER_ENV, HERE, LOGS, ROOT, run

pytestmark = pytest.mark.docker

PROJECT = "dendrite-it"
COMPOSE_FILES = [ROOT / "docker-compose.yml", HERE / "stack.override.yml"]
CONCRETE = ROOT / "tests" / "data" / "concrete_data.csv"
# The course's regression network (Dense(50, relu) x 2, adam, MSE), as in the README's walk-through.
COURSE_JOB: dict[str, Any] = {
    "dataset_id": "concrete",
    "task": "regression",
    "target": "Strength",
    "network": {
        "layers": [
            {"type": "dense", "units": 50, "activation": "relu"},
            {"type": "dense", "units": 50, "activation": "relu"},
        ]
    },
    "training": {
        "optimizer": {"name": "adam"},
        "loss": "mean_squared_error",
        "epochs": 100,
        "validation_split": 0.3,
        "seed": 42,
    },
}
# Long enough to be killed after its first checkpoint (10 s in) and still running: an epoch of the
# course network takes a few milliseconds (workers/loop.py), so about 30-60 s on one worker.
LONG_EPOCHS = 6000
ROW = {
    "Cement": 540.0,
    "Blast Furnace Slag": 0.0,
    "Fly Ash": 0.0,
    "Water": 162.0,
    "Superplasticizer": 2.5,
    "Coarse Aggregate": 1040.0,
    "Fine Aggregate": 676.0,
    "Age": 28,
}
FINISHED = {"succeeded", "failed", "cancelled"}


@dataclass
class Stack:
    """The running stack and what the tests made in it."""

    port: int
    env: dict[str, str]
    figures: dict[str, object]
    key: str = ""
    model_id: str = ""
    shared: dict[str, Any] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 900) -> str:
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        cmd = ["docker-compose", "-p", PROJECT, *files, *args]
        proc = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        with (LOGS / "compose-commands.log").open("a") as log:
            log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"} if self.key else {},
            timeout=30,
        )

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def api_state(self) -> str:
        ids = self.containers("api")
        return inspect(ids[0], "{{.State.Status}}/{{.State.Health.Status}}") if ids else "none"

    def wait_api_healthy(self, timeout: float = 300) -> float:
        started = time.monotonic()
        while (state := self.api_state()) != "running/healthy":
            assert time.monotonic() - started < timeout, f"the API is {state} after {timeout} s"
            time.sleep(1)
        return time.monotonic() - started


def inspect(container: str, template: str) -> str:
    return run(["docker", "inspect", "--format", template, container]).strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_job(
    client: httpx.Client, job_id: str, until: set[str], timeout: float = 900
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}"
        time.sleep(0.5)


def predict(client: httpx.Client, model_id: str) -> float:
    response = client.post(f"/v1/models/{model_id}/predict", json={"instances": [ROW]})
    assert response.status_code == 200, response.text
    return float(response.json()["predictions"][0]["Strength"])


@pytest.fixture(scope="module")
def stack(images: dict[str, object], figures: dict[str, object]) -> Iterator[Stack]:
    port = free_port()
    env = {**DOCKER_ENV, "DENDRITE_API_PORT": str(port)}
    up = Stack(port=port, env=env, figures=figures)
    (LOGS / "compose-commands.log").write_text("")
    up.compose("down", "-v", "--remove-orphans")  # what a run that died may have left
    try:
        yield up
    finally:
        with (LOGS / "compose.log").open("w") as log:
            subprocess.run(
                ["docker-compose", "-p", PROJECT]
                + [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
                + ["logs", "--no-color", "--timestamps"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        up.compose("down", "-v", "--remove-orphans")


def test_up_builds_starts_in_order_and_the_api_gets_healthy(stack: Stack) -> None:
    started = time.monotonic()
    output = stack.compose("up", "-d", "--build")
    stack.figures["up_command_s"] = round(time.monotonic() - started, 1)
    stack.wait_api_healthy()
    stack.figures["up_to_api_healthy_s"] = round(time.monotonic() - started, 1)

    assert "Using cache" in output  # the image built before: `--build` rebuilt nothing
    migrate = run(
        [
            "docker",
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--filter",
            "label=com.docker.compose.service=migrate",
        ]
    ).split()
    assert len(migrate) == 1
    assert inspect(migrate[0], "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    for service in ("postgres", "redis"):
        (container,) = stack.containers(service)
        assert inspect(container, "{{.State.Health.Status}}") == "healthy"
    with stack.client() as client:
        assert client.get("/v1/datasets").status_code == 401  # a key is needed


def test_a_key_made_in_the_api_container_trains_the_course_network(stack: Stack) -> None:
    created = stack.compose("exec", "-T", "api", "dendrite", "keys", "create", "stack-test")
    stack.key = created.strip().splitlines()[-1].strip()

    with stack.client() as client:
        with CONCRETE.open("rb") as data:
            uploaded = client.post(
                "/v1/datasets",
                files={"file": ("concrete_data.csv", data)},
                data={"name": "concrete"},
            )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["rows"] == 1030
        submitted = client.post("/v1/jobs", json=COURSE_JOB)
        assert submitted.status_code == 202, submitted.text
        started = time.monotonic()
        job = wait_job(client, submitted.json()["id"], FINISHED)
        history = client.get(f"/v1/jobs/{job['id']}/history").raise_for_status().json()

    assert job["status"] == "succeeded", job["error"]
    assert len(history["epochs"]) == 100
    val_loss = job["latest_metrics"]["val_loss"]
    assert val_loss < 120  # the course's network learns (about 40 here; the mean guess: ~280)
    stack.model_id = job["model_id"]
    stack.figures["course_job"] = {
        "submit_to_succeeded_s": round(time.monotonic() - started, 1),
        "val_loss": val_loss,
        "worker": job["worker"],
    }
    with stack.client() as client:
        stack.shared["prediction"] = predict(client, stack.model_id)
    assert 20 < stack.shared["prediction"] < 100  # MPa: 540 kg of cement, 28 days


def test_a_killed_worker_s_job_finishes_on_the_other_worker(stack: Stack) -> None:
    stack.compose("up", "-d", "--scale", "worker=2")
    workers = stack.containers("worker")
    assert len(workers) == 2
    long_job = {**COURSE_JOB, "training": {**COURSE_JOB["training"], "epochs": LONG_EPOCHS}}

    with stack.client() as client:
        job_id = client.post("/v1/jobs", json=long_job).raise_for_status().json()["id"]
        job = wait_job(client, job_id, {"running", *FINISHED})
        # After its first checkpoint (every 10 s), so the other worker resumes it.
        time.sleep(15)
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        assert job["status"] == "running", job
        victim_name = job["worker"]
        hostname = victim_name.split("@", 1)[-1]
        (victim,) = [c for c in workers if inspect(c, "{{.Config.Hostname}}") == hostname]
        (survivor,) = [c for c in workers if c != victim]

        killed_at = time.monotonic()
        run(["docker", "kill", victim])
        resumed = wait_job_elsewhere(client, job_id, victim_name)
        elsewhere_s = time.monotonic() - killed_at
        done = wait_job(client, job_id, FINISHED)
        finished_s = time.monotonic() - killed_at
        history = client.get(f"/v1/jobs/{job_id}/history").raise_for_status().json()

    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] >= 2
    assert done["worker"].split("@", 1)[-1] == inspect(survivor, "{{.Config.Hostname}}")
    assert [epoch["epoch"] for epoch in history["epochs"]] == list(range(1, LONG_EPOCHS + 1))
    # `docker kill` is a manual stop: the restart policy leaves the container down.
    assert inspect(victim, "{{.State.Status}}") == "exited"
    stack.figures["kill"] = {
        "progress_at_kill": job["progress"],
        "kill_to_running_elsewhere_s": round(elsewhere_s, 1),
        "progress_when_resumed": resumed["progress"],
        "kill_to_succeeded_s": round(finished_s, 1),
        "attempts": done["attempts"],
        "val_loss": done["latest_metrics"]["val_loss"],
    }


def wait_job_elsewhere(client: httpx.Client, job_id: str, victim: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in FINISHED or (job["status"] == "running" and job["worker"] != victim):
            return job
        assert time.monotonic() < deadline, f"not running elsewhere yet: {job}"
        time.sleep(0.5)


def test_a_restarted_api_serves_the_same_model(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("restart", "api")
    stack.wait_api_healthy()
    stack.figures["api_restart_to_healthy_s"] = round(time.monotonic() - started, 1)

    with stack.client() as client:
        assert predict(client, stack.model_id) == pytest.approx(stack.shared["prediction"])
        listed = client.get("/v1/jobs").raise_for_status().json()
    assert listed["total"] == 2
