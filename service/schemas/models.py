"""Models: a trained model as read, and prediction requests and responses."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import examples


class ModelRead(BaseModel):
    id: str
    job_id: str
    task: str
    input_schema: dict[str, Any]
    outputs: dict[str, Any]
    test_metrics: dict[str, float] | None
    parameters: int
    size_bytes: int
    created_at: datetime


# Most instances (rows) one prediction request may hold, as JSON or as CSV.
MAX_INSTANCES = 100_000


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [examples.CONCRETE_PREDICT]},
    )

    instances: list[dict[str, Any]] | list[Any] = Field(
        min_length=1,
        max_length=MAX_INSTANCES,
        description="Records {feature: raw value} (tabular models); nested arrays (NPZ models).",
    )


class PredictResponse(BaseModel):
    predictions: list[Any]
