"""A small dendrite client for the examples: the Python standard library only (urllib).

Every example takes `--url` (default $DENDRITE_URL or http://127.0.0.1:8000) and `--key`
(default $DENDRITE_API_KEY; leave it out when the server runs with DENDRITE_AUTH_ENABLED=false).
"""

import argparse
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FINAL = ("succeeded", "failed", "cancelled")


class DendriteError(RuntimeError):
    pass


class Client:
    def __init__(self, url: str, key: str | None) -> None:
        self.url, self.key = url.rstrip("/"), key

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise DendriteError(f"{method} {path}: {error.code} {error.read().decode()}") from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json.dumps(body).encode(), "application/json")

    def upload(self, filename: str, name: str) -> Any:
        """POST /v1/datasets: a multipart form with the file and its name."""
        boundary = uuid.uuid4().hex
        content = (DATA / filename).read_bytes()
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'.encode(),
                f"{name}\r\n".encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        return self.request(
            "POST", "/v1/datasets", body, f"multipart/form-data; boundary={boundary}"
        )

    def wait(self, path: str, timeout: float = 3600, every: float = 1.0) -> Any:
        """Poll a job or sweep until it ends; print its progress now and then."""
        deadline, shown = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.get(path)
            progress = state.get("progress")
            line = f"  {state['status']}" + (
                f" {progress['epoch']}/{progress['epochs']} epochs" if progress else ""
            )
            if line != shown:
                print(line, flush=True)
                shown = line
            if state["status"] in FINAL:
                return state
            time.sleep(every)
        raise DendriteError(f"{path} did not end in {timeout} s")


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", default=os.environ.get("DENDRITE_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--key",
        default=os.environ.get("DENDRITE_API_KEY"),
        help="API key (default: $DENDRITE_API_KEY)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny epochs and repeats: checks the flow, not the numbers",
    )
    return parser
