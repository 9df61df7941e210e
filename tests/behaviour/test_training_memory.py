"""Against a real `dendrite api`: a job whose training would need more memory than
DENDRITE_MAX_TRAINING_MEMORY_MB is refused at submit (and at validate) with a 422 naming the
layer that takes most, though its parameter count is small; the course's MNIST networks pass,
and validate shows their estimate."""

import copy
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from service.schemas import examples
from tests.api.live import Server, running_api
from tests.conftest import DATA

# 41k parameters (far under max_parameters), but 26 x 26 x 4,096 activations per image.
HUGE_CONV: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4096},
    {"type": "global_average_pooling2d"},
]
MNIST_CNN: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 32}, {"type": "max_pooling2d"},
    {"type": "conv2d", "filters": 64}, {"type": "max_pooling2d"},
    {"type": "flatten"}, {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 128},
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_api(tmp_path_factory.mktemp("memory")) as live:
        yield live


@pytest.fixture(scope="module")
def mnist(server: Server) -> str:
    with open(DATA / "mnist_small.npz", "rb") as handle:  # 3,000 training images
        created = httpx2.post(
            f"{server.url}/v1/datasets", files={"file": ("mnist.npz", handle)}, timeout=60
        )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _job(dataset_id: str, layers: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    body = copy.deepcopy(examples.MNIST_CLASSIFIER)
    body["dataset_id"] = dataset_id
    body["network"]["layers"] = layers
    body["training"]["batch_size"] = batch_size
    return body


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/specs/validate"])
def test_huge_activations_get_a_422_naming_the_layer(server: Server, mnist: str, path: str) -> None:
    response = httpx2.post(
        f"{server.url}{path}", json=_job(mnist, HUGE_CONV, batch_size=65536), timeout=60
    )

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] and body["field"] == "/network/layers/0"
    detail = body["detail"]
    for words in ("DENDRITE_MAX_TRAINING_MEMORY_MB", "4,096 MB", "layer 0 (conv2d)", "3,000 rows"):
        assert words in detail
    listing = httpx2.get(f"{server.url}/v1/jobs", timeout=10).json()
    assert all(job["request"]["network"]["layers"] != HUGE_CONV for job in listing["items"])


@pytest.mark.parametrize(
    "layers", [examples.MNIST_CLASSIFIER["network"]["layers"], MNIST_CNN], ids=["dense", "cnn"]
)
def test_mnist_networks_validate_with_their_estimate_and_are_accepted(
    server: Server, mnist: str, layers: list[dict[str, Any]]
) -> None:
    body = _job(mnist, layers, batch_size=256)

    validated = httpx2.post(f"{server.url}/v1/specs/validate", json=body, timeout=120)
    submitted = httpx2.post(f"{server.url}/v1/jobs", json=body, timeout=60)

    assert validated.status_code == 200, validated.text
    memory = validated.json()["training_memory"]
    assert memory["batch_size"] == 256 and memory["limit_mb"] == 4096
    parts = memory["weights_mb"] + memory["activations_mb"] + memory["input_mb"]
    assert memory["total_mb"] == pytest.approx(parts, abs=0.01)
    assert 0 < memory["total_mb"] < 200
    assert submitted.status_code == 202, submitted.text
