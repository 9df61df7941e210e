"""Live progress and webhooks with a real job: `dendrite serve` trains the course's concrete network
while a client reads its event stream, and a receiver on loopback gets the signed final state."""

import json
import time

import pytest

from tests.e2e.conftest import Service
from tests.e2e.flows import concrete_job, submit, upload
from tests.sse import Event, events
from tests.webhooks.receiver import Receiver, verify

pytestmark = pytest.mark.e2e

EPOCHS = 8


def test_event_stream_and_webhook_of_a_real_job(embedded: Service) -> None:
    client = embedded.client
    dataset = upload(client, "concrete_data.csv", "concrete-live")
    with Receiver() as receiver:
        body = concrete_job(dataset["id"], epochs=EPOCHS)
        body["callback_url"] = receiver.url
        job = submit(client, body)

        with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=240) as response:
            assert response.status_code == 200
            sent: list[Event] = list(events(response.iter_lines()))

        statuses = [e.data["status"] for e in sent if e.name == "status"]
        assert statuses[-1] == "succeeded", embedded.log_text()
        assert statuses[0] in ("queued", "running") and "running" in statuses
        epochs = [e.data for e in sent if e.name == "epoch"]
        assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))  # each exactly once
        history = client.get(f"/v1/jobs/{job['id']}/history").json()["epochs"]
        assert epochs == history
        assert len({e.id for e in sent}) == len(sent)
        final = client.get(f"/v1/jobs/{job['id']}").json()
        assert sent[-1].data == final

        [received] = receiver.wait_for(1, timeout=60)
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert verify(secret, received)
    assert json.loads(received.body) == final
    deadline = time.monotonic() + 30  # the attempt is recorded once the receiver has answered
    while (delivery := client.get(f"/v1/jobs/{job['id']}/deliveries").json()[0])["state"] != (
        "delivered"
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert delivery["state"] == "delivered", delivery
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
