"""A real HTTP server on loopback that receives webhooks: it records every POST, answers 500 to
the first `fail_first` (then `status`, with `location` if given), and checks signatures the way
docs/webhooks.md tells a receiver to."""

import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int


def verify(secret: str, received: Received, tolerance: float = 300) -> bool:
    """The docs' check: HMAC-SHA256 of '<timestamp>.<body>', and a recent timestamp."""
    timestamp = received.headers["x-dendrite-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and hmac.compare_digest(
        f"sha256={expected}", received.headers["x-dendrite-signature"]
    )


class Receiver:
    def __init__(self, fail_first: int = 0, status: int = 200, location: str | None = None) -> None:
        self.fail_first = fail_first
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        receiver, answer = self, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._arrived:
                    failing = len(receiver.received) < receiver.fail_first
                    status = 500 if failing else answer
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.received.append(Received(headers, body, status))
                    receiver._arrived.notify_all()
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/dendrite"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """The first `count` POSTs, once they have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} webhooks arrived in {timeout} s")
            return list(self.received)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def receiving(fail_first: int = 0) -> Iterator[Receiver]:
    """For fixtures: a running receiver, stopped afterwards."""
    with Receiver(fail_first) as receiver:
        yield receiver


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
