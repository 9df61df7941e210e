"""What a valid job request would build: its layers, parameters and training memory."""

from typing import Any

from pydantic import BaseModel, Field


class LayerSummary(BaseModel):
    name: str
    type: str
    output_shape: list[int | None]
    parameters: int


class TrainingMemory(BaseModel):
    """What one training step needs, estimated at submit and held to
    DENDRITE_MAX_TRAINING_MEMORY_MB (float32 values; activations counted for the backward pass)."""

    total_mb: float
    weights_mb: float = Field(description="Weights, their gradients and the optimizer's state.")
    activations_mb: float = Field(
        description="Every layer's outputs for one batch, and their gradients."
    )
    input_mb: float
    batch_size: int = Field(description="The batch as trained: at most the dataset's rows.")
    limit_mb: int


class SpecSummary(BaseModel):
    valid: bool = True
    inputs: list[str]
    layers: list[LayerSummary]
    parameters: int
    trainable_parameters: int
    loss: str
    metrics: list[str]
    epochs: int
    output_units: int
    labels: list[Any] | None = None
    training_memory: TrainingMemory | None = None
