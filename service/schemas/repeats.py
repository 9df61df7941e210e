"""Repeated jobs: each repeat's outcome and the test metrics aggregated over them."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class MetricAggregate(BaseModel):
    mean: float
    std: float = Field(description="Population standard deviation (ddof 0, as numpy.std).")
    min: float
    max: float
    count: int


class RepeatsSummary(BaseModel):
    requested: int
    succeeded: int
    failed: int
    cancelled: int
    test_metrics: dict[str, MetricAggregate] = Field(
        description="Per test metric, over the repeats that succeeded."
    )


class RepeatRead(BaseModel):
    index: int
    seed: int = Field(description="Seeds this repeat's split, initialization and shuffles.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    part_job_id: str = Field(description="The part (a job) that trains this repeat.")
    epochs: int
    metrics: dict[str, float] | None = Field(description="The last epoch's losses and metrics.")
    test_metrics: dict[str, float] | None
    seconds: float | None
    finished_at: datetime | None


class RepeatsRead(BaseModel):
    job_id: str
    summary: RepeatsSummary
    items: list[RepeatRead]
