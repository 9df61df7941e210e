"""Hyperparameter sweeps: the search asked for, and its trials ranked."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.schemas import examples
from service.schemas.jobs import JobCreate


class Range(BaseModel):
    """Random search: a value drawn between `min` and `max` (log-uniformly with `log`)."""

    model_config = ConfigDict(extra="forbid")

    min: float
    max: float
    log: bool = False
    integer: bool = Field(default=False, description="Round to a whole number.")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.min < self.max:
            raise ValueError("min must be below max")
        if self.log and self.min <= 0:
            raise ValueError("a log range needs min > 0")
        return self


class SweepCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.CONCRETE_SWEEP]}
    )

    base: JobCreate = Field(
        description="The job request every trial starts from (without `register_as`: register "
        "the best trial's model yourself)."
    )
    search: Literal["grid", "random"] = Field(
        default="grid",
        description="grid: every combination of the listed values; random: `max_trials` draws.",
    )
    parameters: dict[str, list[Any] | Range] = Field(
        min_length=1,
        max_length=16,
        description="Field path -> values (grid and random) or a Range (random only). Paths "
        "are dotted names into the job request, with [*] for every item of a list or [n] for "
        "one: `training.optimizer.learning_rate`, `training.batch_size`, `training.epochs`, "
        "`network.layers[*].units`, `network.layers[0].activation`, or `network.layers` whose "
        "values are whole layer lists (to vary the layer count). Applied in the order given.",
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        description="Random: trials to draw (default 10). Grid: a ceiling on the combinations. "
        "At most DENDRITE_MAX_SWEEP_TRIALS (default 20); each trial is a job and counts "
        "towards your queued + running jobs.",
    )
    metric: str | None = Field(
        default=None,
        description="What ranks the trials: a logged name (`loss`, `val_loss`, `val_mae`, ...; "
        "the last epoch's value) or `test_<name>` (the model's test metrics). Default: "
        "val_loss with a validation split, else test_loss with a test split, else loss.",
    )
    direction: Literal["min", "max"] | None = Field(
        default=None, description="Default: max for accuracy-like metrics, else min."
    )
    seed: int | None = Field(
        default=None, ge=0, lt=2**31, description="Seeds the random search's draws."
    )

    @field_validator("base")
    @classmethod
    def _no_registration(cls, base: JobCreate) -> JobCreate:
        if base.register_as is not None:
            raise ValueError(
                "register_as applies to single jobs: a sweep would register every trial; "
                "register the best trial's model (POST /v1/registered-models/{name}/versions)"
            )
        return base


class TrialRead(BaseModel):
    rank: int | None = Field(description="1 is best; none until the trial has its metric.")
    trial: int
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    parameters: dict[str, Any]
    value: float | None = Field(description="The sweep's metric for this trial.")
    model_id: str | None
    latest_metrics: dict[str, float] | None
    test_metrics: dict[str, float] | None
    error: str | None


class SweepRead(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    search: str
    metric: str
    direction: str
    trials: list[TrialRead] = Field(description="Ranked: best first, then unranked by number.")
    best: TrialRead | None = Field(description="The best trial so far; its model_id predicts.")
    created_at: datetime
    request: dict[str, Any]
