"""`Dendrite`: the calls a service makes to dendrite, with typed answers (the generated models) and
the error envelope raised as exceptions (`dendrite_client.errors`)."""

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from dendrite_client import errors
from dendrite_client.models import (
    AliasMoveRead,
    BatchPredictionRead,
    DatasetRead,
    HistoryRead,
    JobRead,
    ModelRead,
    RegisteredModelRead,
    VersionRead,
)

FINAL = ("succeeded", "failed", "cancelled")
M = TypeVar("M", bound=BaseModel)


class Dendrite:
    """A dendrite server at `url`, called with the API `key` (None when its auth is off)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        key: str | None = None,
        *,
        timeout: float = 60,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers.update(headers)

    def __enter__(self) -> "Dendrite":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.http.request(method, path, **options)
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise errors.for_status(response.status_code, body, response.headers.get("retry-after"))
        return response

    def get(self, path: str) -> Any:
        """Any GET of the API as JSON (for what this client does not wrap: diagnostics, ...)."""
        return self._call("GET", path).json()

    def _typed(self, model: type[M], method: str, path: str, **options: Any) -> M:
        return model.model_validate(self._call(method, path, **options).json())

    # -- datasets and jobs ---------------------------------------------------------------------

    def upload(self, path: str | Path, name: str | None = None) -> DatasetRead:
        """Upload a CSV, Parquet or NPZ file; its schema and statistics come back."""
        path = Path(path)
        data = {"name": name} if name else {}
        with path.open("rb") as handle:
            return self._typed(
                DatasetRead, "POST", "/v1/datasets", files={"file": (path.name, handle)}, data=data
            )

    def submit(self, request: dict[str, Any], idempotency_key: str | None = None) -> JobRead:
        """Submit a training job (the body POST /v1/jobs takes); it comes back queued."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._typed(JobRead, "POST", "/v1/jobs", json=request, headers=headers)

    def job(self, job_id: str) -> JobRead:
        return self._typed(JobRead, "GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> JobRead:
        return self._typed(JobRead, "POST", f"/v1/jobs/{job_id}/cancel")

    def history(self, job_id: str, max_points: int | None = None) -> HistoryRead:
        """Every epoch's metrics (evenly thinned to about `max_points` rows if given)."""
        params = {"max_points": max_points} if max_points else {}
        return self._typed(HistoryRead, "GET", f"/v1/jobs/{job_id}/history", params=params)

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's event stream: ("status", job) on each change, ("epoch", row) per epoch,
        until the job ends."""
        return self._events(f"/v1/jobs/{job_id}/events")

    def _events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
            if response.status_code >= 400:
                response.read()
                raise errors.for_status(response.status_code, response.json())
            kind, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data.append(line.partition(":")[2].strip())
                elif not line and data:
                    yield kind, json.loads("\n".join(data))
                    kind, data = "message", []

    def wait(self, job_id: str, timeout: float = 3600, poll: float = 1.0) -> JobRead:
        """The job once it has ended (succeeded, failed or cancelled): follows its event stream,
        and polls when the stream cannot be had (a proxy that buffers it, an older server)."""
        job = lambda: self.job(job_id)  # noqa: E731
        return _wait(f"job {job_id}", self.events(job_id), job, JobRead, timeout, poll)

    # -- models and predictions ----------------------------------------------------------------

    def model(self, model: str) -> ModelRead:
        """A model by id, `name@alias` or `name/versions/n`."""
        return self._typed(ModelRead, "GET", f"/v1/models/{model}")

    def predict(self, model: str, instances: list[Any]) -> list[Any]:
        """Predictions for raw rows (records for tabular models) from a model id or reference."""
        response = self._call("POST", f"/v1/models/{model}/predict", json={"instances": instances})
        predictions: list[Any] = response.json()["predictions"]
        return predictions

    def download(self, model: str, path: str | Path) -> Path:
        """The model's `.keras` file, written to `path`."""
        return self._save(f"/v1/models/{model}/download", path)

    def _save(self, url: str, path: str | Path) -> Path:
        path = Path(path)
        with self.http.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise errors.for_status(response.status_code, response.json())
            with path.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return path

    # -- batch predictions ---------------------------------------------------------------------

    def batch_predict(
        self,
        model: str,
        dataset_id: str,
        output_format: str = "csv",
        passthrough_columns: list[str] | None = None,
        **options: Any,
    ) -> BatchPredictionRead:
        """Submit a batch prediction: the whole dataset scored by the model (an id or a
        reference) into a file; `options`: `chunk_rows`, `array`, `callback_url`."""
        body = {
            "model": model,
            "dataset_id": dataset_id,
            "output_format": output_format,
            "passthrough_columns": passthrough_columns or [],
            **options,
        }
        return self._typed(BatchPredictionRead, "POST", "/v1/batch-predictions", json=body)

    def batch_prediction(self, batch_id: str) -> BatchPredictionRead:
        return self._typed(BatchPredictionRead, "GET", f"/v1/batch-predictions/{batch_id}")

    def cancel_batch_prediction(self, batch_id: str) -> BatchPredictionRead:
        path = f"/v1/batch-predictions/{batch_id}/cancel"
        return self._typed(BatchPredictionRead, "POST", path)

    def batch_events(self, batch_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The batch prediction's event stream: ("status", it) on each change, ("progress", it)
        after each chunk, until it ends."""
        return self._events(f"/v1/batch-predictions/{batch_id}/events")

    def wait_batch_prediction(
        self, batch_id: str, timeout: float = 3600, poll: float = 1.0
    ) -> BatchPredictionRead:
        """The batch prediction once it has ended, from its event stream or by polling."""
        return _wait(
            f"batch prediction {batch_id}",
            self.batch_events(batch_id),
            lambda: self.batch_prediction(batch_id),
            BatchPredictionRead,
            timeout,
            poll,
        )

    def download_batch_result(
        self, batch_id: str, path: str | Path, errors_file: bool = False
    ) -> Path:
        """The result file (or, with `errors_file`, the errors file), written to `path`."""
        which = "errors" if errors_file else "result"
        return self._save(f"/v1/batch-predictions/{batch_id}/{which}", path)

    # -- the registry --------------------------------------------------------------------------

    def create_registered_model(
        self, name: str, description: str | None = None
    ) -> RegisteredModelRead:
        body = {"name": name, "description": description}
        return self._typed(RegisteredModelRead, "POST", "/v1/registered-models", json=body)

    def registered_model(self, name: str) -> RegisteredModelRead:
        return self._typed(RegisteredModelRead, "GET", f"/v1/registered-models/{name}")

    def add_version(self, name: str, model_id: str) -> VersionRead:
        return self._typed(
            VersionRead,
            "POST",
            f"/v1/registered-models/{name}/versions",
            json={"model_id": model_id},
        )

    def versions(self, name: str) -> list[VersionRead]:
        response = self._call("GET", f"/v1/registered-models/{name}/versions")
        return [VersionRead.model_validate(row) for row in response.json()]

    def set_alias(self, name: str, alias: str, version: int) -> VersionRead:
        """Point `alias` at `version`: the next request for `name@alias` is served by it."""
        return self._typed(
            VersionRead,
            "PUT",
            f"/v1/registered-models/{name}/aliases/{alias}",
            json={"version": version},
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/v1/registered-models/{name}/aliases/{alias}")

    def alias_moves(self, name: str) -> list[AliasMoveRead]:
        response = self._call("GET", f"/v1/registered-models/{name}/alias-moves")
        return [AliasMoveRead.model_validate(row) for row in response.json()]

    def register(self, model_id: str, name: str, alias: str | None = None) -> VersionRead:
        """Register `model_id` as the next version of `name` (created when missing) and move
        `alias` to it: a deploy in one call."""
        with contextlib.suppress(errors.Conflict):  # the name exists
            self.create_registered_model(name)
        version = self.add_version(name, model_id)
        if alias is not None:
            version = self.set_alias(name, alias, version.version)
        return version


E = TypeVar("E", bound=BaseModel)


def _wait(
    what: str,
    stream: Iterator[tuple[str, dict[str, Any]]],
    read: Callable[[], E],
    model: type[E],
    timeout: float,
    poll: float,
) -> E:
    """What `read` gives once its status is final: from the event stream's final status event,
    else (no stream: a proxy that buffers it, an older server) by polling `read`."""
    deadline = time.monotonic() + timeout
    try:
        for kind, data in stream:
            if kind == "status" and data.get("status") in FINAL:
                return model.model_validate(data)
            if time.monotonic() > deadline:
                break
    except (httpx.HTTPError, errors.ServerError, ValueError):
        pass  # fall back to polling
    while True:
        state = read()
        status = state.status.value  # type: ignore[attr-defined]
        if status in FINAL:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} is still {status}")
        time.sleep(poll)
