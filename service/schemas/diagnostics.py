"""Training diagnostics: per epoch, each layer's gradient norm and unit health, and the flags."""

from typing import Literal

from pydantic import BaseModel, Field


class LayerDiagnostic(BaseModel):
    name: str
    type: str
    activation: str | None
    gradient_norm: float | None = Field(
        description="L2 norm of the loss gradient w.r.t. the kernel on the probe batch; null for "
        "a layer without a kernel, or one whose gradient is not finite."
    )
    gradient_finite: bool
    dead_fraction: float | None = Field(description="ReLU layers: share of dead units.")
    saturated_fraction: float | None = Field(
        description="sigmoid/tanh layers: share of saturated units."
    )


class DiagnosticFlag(BaseModel):
    kind: Literal["dead", "vanishing", "exploding"]
    rule: str = Field(description="The rule that raised the flag.")
    detail: str = Field(description="The numbers that broke the rule.")
    layers: list[str]


class EpochDiagnosticRead(BaseModel):
    epoch: int
    first_to_output_ratio: float | None = Field(
        description="The first layer's kernel gradient norm / the output layer's."
    )
    layers: list[LayerDiagnostic]
    flags: list[DiagnosticFlag]


class DiagnosticsRead(BaseModel):
    job_id: str
    enabled: bool = Field(description="false when the job asked for training.diagnostics false.")
    rules: dict[str, str] = Field(description="How each number and flag is defined.")
    epochs: list[EpochDiagnosticRead]
