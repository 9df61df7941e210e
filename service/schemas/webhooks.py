"""Webhooks: the signing secret and each delivery with its attempts."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class WebhookSecretRead(BaseModel):
    secret: str = Field(
        description="Your key for verifying webhook signatures: X-Dendrite-Signature is "
        "'sha256=' + hex HMAC-SHA256 of '<X-Dendrite-Timestamp>.<body>' under it."
    )
    created_at: datetime


class WebhookAttemptRead(BaseModel):
    number: int
    started_at: datetime
    seconds: float
    status_code: int | None = Field(description="The receiver's answer; none if there was none.")
    error: str | None = Field(description="Why the attempt failed; none when it was a 2xx.")


class WebhookDeliveryRead(BaseModel):
    id: str = Field(description="Sent as X-Dendrite-Delivery: the same on every attempt.")
    job_id: str
    url: str
    state: Literal["waiting", "pending", "delivered", "failed"] = Field(
        description="waiting: the job has not ended; pending: due at next_attempt_at; "
        "delivered: a 2xx came back; failed: every attempt failed."
    )
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: list[WebhookAttemptRead]
