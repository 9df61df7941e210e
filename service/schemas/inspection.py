"""Inspecting a model: one row's forward propagation through every layer, and the weights."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import examples


class ForwardRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"instance": examples.CONCRETE_PREDICT["instances"][0]}]},
    )

    instance: dict[str, Any] | list[Any] = Field(
        description="One row, as in predict: {feature: raw value}, or a nested array (NPZ models)."
    )


class ArrayStats(BaseModel):
    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    values: Any | None = Field(
        default=None,
        description="The values, nested as `shape`; null when there are more than "
        "DENDRITE_INSPECT_MAX_VALUES of them (or they are text: then see `text`).",
    )
    text: list[str] | None = Field(default=None, description="Text values (string inputs).")


class LayerOutput(BaseModel):
    name: str
    type: str
    activation: str | None
    output: ArrayStats = Field(description="The layer's output for the row (no batch axis).")


class ForwardResponse(BaseModel):
    model_id: str
    layers: list[LayerOutput] = Field(description="Inputs first, then every layer in order.")


class WeightRead(BaseModel):
    name: str = Field(description="e.g. kernel, bias, gamma, mean.")
    trainable: bool
    stats: ArrayStats


class LayerWeights(BaseModel):
    name: str
    type: str
    activation: str | None
    parameters: int
    weights: list[WeightRead]


class WeightsResponse(BaseModel):
    model_id: str
    max_values: int = Field(description="Values are listed for weights with at most this many.")
    layers: list[LayerWeights]
