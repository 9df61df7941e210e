"""Slow clients against a real `dendrite api`: connections whose headers never finish, uploads
that stall, and more connections than the server takes. Each is closed (with a 408 or 503
envelope where a response can still be sent) while other clients are served."""

import json
import selectors
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.api.live import Server, running_api

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLOW_CONNECTIONS = 200
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("slow")
    settings = {
        "header_timeout": str(HEADER_TIMEOUT),
        "body_timeout": str(BODY_TIMEOUT),
        "max_connections": str(SLOW_CONNECTIONS + 50),
    }
    with running_api(root, **settings) as live:
        yield live


def _connect(live: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=30)


def _wait_closed(sockets: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; fails past `within` seconds."""
    received = {sock: b"" for sock in sockets}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        open_ = len(sockets)
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    chunk = ready.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[ready] += chunk
                else:
                    selector.unregister(ready)
                    open_ -= 1
        assert open_ == 0, f"{open_} of {len(sockets)} connections still open after {within} s"
    return received


def _envelope(response: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_connections_with_unfinished_headers_are_closed_while_others_are_served(
    server: Server,
) -> None:
    slow = [_connect(server) for _ in range(SLOW_CONNECTIONS)]
    try:
        for sock in slow:
            sock.sendall(PARTIAL_HEADERS)
        started = time.monotonic()
        # Meanwhile the server answers a whole request at once.
        assert httpx2.get(f"{server.url}/healthz", timeout=5).status_code == 200

        received = _wait_closed(slow, within=HEADER_TIMEOUT + 20)
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9  # not closed before their time
        status, body = _envelope(received[slow[0]])
        assert status == 408 and body["error"] == "request_timeout"
        assert "DENDRITE_HEADER_TIMEOUT" in body["detail"]
    finally:
        for sock in slow:
            sock.close()
    assert httpx2.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_headers_dripped_a_byte_at_a_time_are_closed_at_the_deadline(server: Server) -> None:
    """The limit is on the headers' whole time, not the pause between bytes."""
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(PARTIAL_HEADERS)
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 20:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
        assert closed, "a client dripping its headers kept the connection"


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        assert _wait_closed([sock], within=HEADER_TIMEOUT + 20) == {sock: b""}


def test_a_stalled_upload_gets_a_408_and_leaves_nothing(server: Server) -> None:
    boundary = b"stall"
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="stalled.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\na,b\r\n1,2\r\n"
    )
    request = (
        b"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(request + head)  # then nothing more
        received = _wait_closed([sock], within=BODY_TIMEOUT + 20)[sock]

    status, body = _envelope(received)
    assert status == 408 and "DENDRITE_BODY_TIMEOUT" in body["detail"]
    assert httpx2.get(f"{server.url}/v1/datasets", timeout=5).json()["total"] == 0
    assert server.datasets_on_disk() == []


def test_a_slow_but_steady_upload_is_not_cut(server: Server) -> None:
    """Bytes that keep coming, each within the body timeout, make a whole upload."""
    rows = [b"%d,%d\n" % (i, i * 2) for i in range(6)]
    content = b"a,b\n" + b"".join(rows)
    boundary = b"steady"
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="steady.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n"
    )
    tail = b"\r\n--" + boundary + b"--\r\n"
    body = head + content + tail
    request = (
        b"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(request + head)
        for piece in [b"a,b\n", *rows]:  # longer in all than the body timeout
            time.sleep(BODY_TIMEOUT / 3)
            sock.sendall(piece)
        sock.sendall(tail)
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 201"), response


def test_past_the_connection_limit_a_request_gets_a_503_envelope(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    limit = 10
    root = tmp_path_factory.mktemp("limit")
    with running_api(root, max_connections=str(limit), header_timeout="60") as live:
        held = [_connect(live) for _ in range(limit)]
        try:
            time.sleep(0.5)  # the server has accepted them all
            response = httpx2.get(f"{live.url}/healthz", timeout=10)
        finally:
            for sock in held:
                sock.close()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        body = response.json()
        assert body["error"] == "service_unavailable"
        assert "DENDRITE_MAX_CONNECTIONS" in body["detail"]
        time.sleep(0.5)
        assert httpx2.get(f"{live.url}/healthz", timeout=10).status_code == 200
