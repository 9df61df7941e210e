"""Where a job's time goes: seconds per phase of one attempt, stored on the job (`timings`)."""

import time

# Seconds the worker process spent importing TensorFlow and the pipeline before the job came
# (set by `workers.celery_app` as a pool process warms up; 0 when the import was already done).
import_seconds = 0.0


class Laps:
    """A lap timer: each call books the time since the previous call to a named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"import": round(import_seconds, 6)}
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self._last, 6)
        self._last = now

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + seconds, 6)
