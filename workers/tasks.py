"""The training task: thin, takes a job id; the attempt runs in `workers.training`."""

from typing import Any

from service.core import logs
from workers.celery_app import app


@app.task(name="training.run_job", bind=True)
def run_job(self: Any, job_id: str) -> None:
    from workers import training  # TensorFlow: child process only

    try:
        with logs.job_context(job_id):  # every record logged meanwhile carries the job's id
            training.run(job_id, worker=str(self.request.hostname or "unknown"))
    finally:
        training.release()  # this process runs the next job: nothing of this one stays
