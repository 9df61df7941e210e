#!/usr/bin/env python3
"""Drive the real docker-compose.yml stack (project dendrite-it) end to end and record figures.

Steps: up -d -> healthy API (+ migrate exited 0) -> key -> upload concrete -> train the course
network -> predict -> scale worker=2 -> second job -> docker kill its worker -> job finishes on the
other -> restart api -> predict again. `down -v` is left to runbook.sh (it always runs).

Stdlib only (the host's python3); docker / docker-compose / curl on PATH.
Writes figures.json and a timestamped log (stdout) into the current directory.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

PROJECT = "dendrite-it"
# DRIVE_COMPOSE_FILES: colon-separated compose files (default: the real one alone).
# DRIVE_UP_ARGS: extra `up -d` arguments, e.g. "--build".
COMPOSE = ["docker-compose", "-p", PROJECT] + [
    arg
    for f in os.environ.get("DRIVE_COMPOSE_FILES", "docker-compose.yml").split(":")
    for arg in ("-f", f)
]
UP_ARGS = os.environ.get("DRIVE_UP_ARGS", "").split()
BASE = "http://127.0.0.1:8000"
CONCRETE = os.environ.get(
    "CONCRETE", os.path.join(os.path.dirname(__file__), "..", "data", "concrete_data.csv")
)
FIGURES: dict = {}
T0 = time.monotonic()


def log(*parts) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    print(f"[{stamp} +{time.monotonic() - T0:7.1f}s]", *parts, flush=True)


def sh(cmd: list[str], check: bool = True, timeout: float = 900) -> str:
    log("$", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    out = (proc.stdout + proc.stderr).strip()
    if out:
        print("   " + out.replace("\n", "\n   "), flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"FAILED ({proc.returncode}): {' '.join(cmd)}")
    return proc.stdout


def save() -> None:
    with open("figures.json", "w") as f:
        json.dump(FIGURES, f, indent=2, default=str)


def api(
    method: str,
    path: str,
    key: str | None = None,
    body=None,
    ctype="application/json",
    timeout: float = 30,
):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            try:
                return resp.status, (json.loads(raw) if raw else None)
            except ValueError:  # e.g. a CSV answer
                return resp.status, raw.decode(errors="replace")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def container_ids(service: str) -> list[str]:
    out = sh([*COMPOSE, "ps", "-q", service], check=False)
    return [line.strip() for line in out.splitlines() if line.strip()]


def inspect(cid: str, fmt: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", fmt, cid], capture_output=True, text=True
    ).stdout.strip()


def wait_api_healthy(timeout: float = 600) -> float:
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        ids = subprocess.run(
            [*COMPOSE, "ps", "-q", "api"], capture_output=True, text=True
        ).stdout.split()
        state = inspect(ids[0], "{{.State.Status}}/{{.State.Health.Status}}") if ids else "none"
        if state != last:
            log("api container:", state)
            last = state
        if state.endswith("/healthy"):
            return time.monotonic() - start
        time.sleep(1)
    raise SystemExit("api never became healthy")


SPEC = {
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


def wait_job(key: str, job_id: str, timeout: float = 1800, poll: float = 2.0) -> dict:
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        status, job = api("GET", f"/v1/jobs/{job_id}", key)
        if status != 200:
            log("GET job ->", status, job)
            time.sleep(poll)
            continue
        sig = (job["status"], job["worker"], job["attempts"])
        if sig != last:
            log(
                "job",
                job_id[:8],
                job["status"],
                "worker",
                job["worker"],
                "attempts",
                job["attempts"],
                "progress",
                job["progress"],
            )
            last = sig
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(poll)
    raise SystemExit(f"job {job_id} did not finish")


def predict(key: str, model_id: str, label: str) -> None:
    status, body = api("POST", f"/v1/models/{model_id}/predict", key, {"instances": [ROW]})
    log(f"predict ({label}) ->", status, body)
    FIGURES[f"predict_{label}"] = {"status": status, "body": body}
    with open(CONCRETE, "rb") as handle:
        csv = b"".join(handle.readlines()[:3])
    status, body = api("POST", f"/v1/models/{model_id}/predict", key, csv, ctype="text/csv")
    log(f"predict csv ({label}) ->", status, body)
    FIGURES[f"predict_csv_{label}"] = {"status": status, "body": body}
    save()


def worker_container(worker_name: str) -> str | None:
    host = worker_name.split("@", 1)[-1]
    for cid in container_ids("worker"):
        if inspect(cid, "{{.Config.Hostname}}") == host:
            return cid
    return None


def main() -> None:
    # --- up ---
    t_up = time.monotonic()
    sh([*COMPOSE, "up", "-d", *UP_ARGS], timeout=1200)
    FIGURES["up_command_s"] = round(time.monotonic() - t_up, 1)
    wait_api_healthy()
    FIGURES["up_to_api_healthy_s"] = round(time.monotonic() - t_up, 1)
    log(f"api healthy {FIGURES['up_to_api_healthy_s']} s after `up -d` started")
    sh([*COMPOSE, "ps"], check=False)
    mig = subprocess.run(
        [*COMPOSE, "ps", "-a", "-q", "migrate"], capture_output=True, text=True
    ).stdout.split()
    if not mig:  # compose 1.29: `ps -a` may not exist; fall back to docker ps -a
        mig = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={PROJECT}",
                "--filter",
                "label=com.docker.compose.service=migrate",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
    FIGURES["migrate_exit"] = (
        inspect(mig[0], "{{.State.Status}} {{.State.ExitCode}}") if mig else None
    )
    log("migrate:", FIGURES["migrate_exit"])
    save()

    # --- key, dataset, first job ---
    out = sh([*COMPOSE, "exec", "-T", "api", "dendrite", "keys", "create", "it"])
    key = out.strip().splitlines()[-1].strip()
    log("key:", key[:6] + "...")
    up = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            f"Authorization: Bearer {key}",
            "-F",
            f"file=@{CONCRETE}",
            "-F",
            "name=concrete",
            BASE + "/v1/datasets",
        ],
        capture_output=True,
        text=True,
    )
    body, code = up.stdout.rsplit("\n", 1)
    log("upload ->", code, body[:400])
    FIGURES["upload_status"] = code
    ds = json.loads(body)
    FIGURES["dataset"] = {"id": ds.get("id"), "rows": ds.get("rows")}

    status, job = api("POST", "/v1/jobs", key, SPEC)
    log("submit job 1 ->", status, job.get("id") if isinstance(job, dict) else job)
    t_sub = time.monotonic()
    job = wait_job(key, job["id"])
    FIGURES["job1"] = {
        "id": job["id"],
        "status": job["status"],
        "worker": job["worker"],
        "duration_seconds": job["duration_seconds"],
        "submit_to_done_s": round(time.monotonic() - t_sub, 1),
        "latest_metrics": job["latest_metrics"],
        "timings": job["timings"],
        "error": job["error"],
        "model_id": job["model_id"],
    }
    save()
    log("job 1:", json.dumps(FIGURES["job1"]))
    if job["status"] != "succeeded":
        raise SystemExit("job 1 failed")
    model1 = job["model_id"]
    predict(key, model1, "after_job1")

    # --- two workers, a second job, kill its worker ---
    t_scale = time.monotonic()
    sh([*COMPOSE, "up", "-d", "--scale", "worker=2"], timeout=600)
    FIGURES["scale_command_s"] = round(time.monotonic() - t_scale, 1)
    workers = container_ids("worker")
    log("workers:", workers)
    # Wait until both Celery workers log "ready".
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready = []
        for c in workers:
            logs = subprocess.run(["docker", "logs", c], capture_output=True, text=True)
            if "ready" in logs.stdout + logs.stderr:
                ready.append(c)
        if len(ready) == len(workers):
            break
        time.sleep(2)
    FIGURES["scale_to_both_ready_s"] = round(time.monotonic() - t_scale, 1)
    log("both workers ready after", FIGURES["scale_to_both_ready_s"], "s")

    spec2 = json.loads(json.dumps(SPEC))
    # 300 epochs end in ~14 s here (about 0.045 s an epoch): too short to kill after a checkpoint
    # (checkpoint_interval 10 s). 1500 epochs: about 70 s on one worker.
    spec2["training"]["epochs"] = int(os.environ.get("JOB2_EPOCHS", "1500"))
    status, job2 = api("POST", "/v1/jobs", key, spec2)
    job2_id = job2["id"]
    log("submit job 2 ->", status, job2_id)
    t_sub2 = time.monotonic()
    # Running, a checkpoint written (checkpoint_interval 10 s): kill after 15 s of running.
    running_since = None
    while True:
        _, j = api("GET", f"/v1/jobs/{job2_id}", key)
        if j["status"] == "running" and running_since is None:
            running_since = time.monotonic()
            log("job 2 running on", j["worker"], "progress", j["progress"])
        if running_since and time.monotonic() - running_since > 15:
            break
        if j["status"] in ("succeeded", "failed", "cancelled"):
            raise SystemExit(f"job 2 ended before the kill: {j['status']}")
        time.sleep(0.5)
    victim_worker = j["worker"]
    victim = worker_container(victim_worker)
    log("job 2 on", victim_worker, "container", victim, "progress", j["progress"])
    if victim is None:
        raise SystemExit("no container matches the job's worker")
    t_kill = time.monotonic()
    kill_wall = datetime.now(UTC)
    sh(["docker", "kill", victim])
    timeline = {
        "killed_worker": victim_worker,
        "killed_container": victim[:12],
        "progress_at_kill": j["progress"],
        "kill_at": kill_wall.isoformat(),
    }
    seen = set()
    while True:
        _, j = api("GET", f"/v1/jobs/{job2_id}", key)
        now = round(time.monotonic() - t_kill, 1)
        if j["status"] == "queued" and "queued" not in seen:
            seen.add("queued")
            timeline["kill_to_requeued_s"] = now
            log("job 2 back in the queue", now, "s after the kill")
        if (
            j["status"] == "running"
            and j["worker"]
            and j["worker"] != victim_worker
            and "elsewhere" not in seen
        ):
            seen.add("elsewhere")
            timeline["kill_to_running_elsewhere_s"] = now
            timeline["new_worker"] = j["worker"]
            timeline["attempts"] = j["attempts"]
            timeline["progress_on_resume"] = j["progress"]
            log("job 2 running on", j["worker"], now, "s after the kill; progress", j["progress"])
        if (
            j["status"] == "running"
            and j["worker"] == victim_worker
            and "same" not in seen
            and "queued" in seen
        ):
            seen.add("same")
            timeline["ran_again_on_killed_worker_name_s"] = now
            log("job 2 running AGAIN on the killed worker's name", now)
        if j["status"] in ("succeeded", "failed", "cancelled"):
            timeline["kill_to_finished_s"] = now
            timeline["final_status"] = j["status"]
            timeline["final_worker"] = j["worker"]
            timeline["attempts_final"] = j["attempts"]
            timeline["duration_seconds"] = j["duration_seconds"]
            timeline["latest_metrics"] = j["latest_metrics"]
            timeline["error"] = j["error"]
            timeline["submit_to_finished_s"] = round(time.monotonic() - t_sub2, 1)
            model2 = j["model_id"]
            break
        if now > 1800:
            raise SystemExit("job 2 never finished after the kill")
        time.sleep(0.5)
    timeline["killed_container_state"] = inspect(
        victim, "{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}"
    )
    FIGURES["kill_timeline"] = timeline
    save()
    log("kill timeline:", json.dumps(timeline))
    _, hist = api("GET", f"/v1/jobs/{job2_id}/history", key)
    if isinstance(hist, dict):
        epochs = hist.get("epochs") or []
        FIGURES["job2_history_epochs"] = len(epochs)
    save()

    # --- restart the API, predict again ---
    t_restart = time.monotonic()
    sh([*COMPOSE, "restart", "api"], timeout=300)
    wait_api_healthy()
    FIGURES["api_restart_to_healthy_s"] = round(time.monotonic() - t_restart, 1)
    predict(key, model1, "after_api_restart_model1")
    if model2:
        predict(key, model2, "after_api_restart_model2")
    sh([*COMPOSE, "ps"], check=False)
    log("done")
    save()


if __name__ == "__main__":
    try:
        main()
    finally:
        save()
