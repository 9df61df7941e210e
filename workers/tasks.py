"""The training task: thin, takes a job id; the pipeline lives in `workers.training`."""

from typing import Any

from workers.celery_app import app


@app.task(name="training.run_job", bind=True)
def run_job(self: Any, job_id: str) -> None:
    from workers import training  # TensorFlow: child process only

    training.run(job_id, worker=str(self.request.hostname or "unknown"))
