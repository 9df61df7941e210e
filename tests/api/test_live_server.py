"""Against a real server (`dendrite api`: uvicorn with dendrite's HTTP protocol) over raw sockets:
an upload cut off mid-stream leaves nothing behind, and oversized headers get a 431 envelope."""

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.api.live import Server, running_api

BOUNDARY = b"dendrite-test-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_api(tmp_path_factory.mktemp("live")) as live:
        yield live


def _connect(live: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=10)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_upload_cut_off_mid_stream_leaves_no_dataset_and_no_file(server: Server) -> None:
    part_head = (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="cut.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n"
        b"a,b\r\n"
    )
    rows = b"1,2\r\n" * (600 * 1024)  # 3 MiB sent, more than the parser keeps in memory
    request = (
        b"POST /v1/datasets HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
        b"Content-Length: " + str(len(part_head) + 10 * len(rows)).encode() + b"\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(request + part_head + rows)
    # The server sees the disconnect on its next read; give it that moment, then ask it.
    time.sleep(1.0)

    listing = httpx2.get(f"{server.url}/v1/datasets", timeout=10).json()
    assert listing["total"] == 0
    assert server.datasets_on_disk() == []
    assert list(server.temp_dir.iterdir()) == []  # nor a spooled copy of the part
    # The server is unharmed: a whole upload still works, and stores exactly one file.
    files = {"file": ("whole.csv", b"a,b\n1,2\n3,4\n", "text/csv")}
    created = httpx2.post(f"{server.url}/v1/datasets", files=files, timeout=10)
    assert created.status_code == 201, created.text
    assert [path.name for path in server.datasets_on_disk()] == [f"{created.json()['id']}.csv"]


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Big: " + b"a" * (1 << 20)],  # one huge header
        [b"X-%d: %s" % (i, b"b" * 100) for i in range(2000)],  # many headers
    ],
    ids=["one huge header", "many headers"],
)
def test_oversized_headers_get_a_431_envelope(server: Server, headers: list[bytes]) -> None:
    with _connect(server) as sock:
        # The server may answer and close before it has it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
            )
        status, body = _read_response(sock)

    assert status == 431
    assert body["error"] == "request_header_fields_too_large"
    assert "DENDRITE_MAX_HEADER_BYTES" in str(body["detail"])
    assert httpx2.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_headers_under_the_limit_are_served(server: Server) -> None:
    response = httpx2.get(f"{server.url}/healthz", headers={"X-Padding": "p" * 30_000}, timeout=10)

    assert response.status_code == 200
