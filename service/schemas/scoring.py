"""Batch predictions: a whole dataset scored by a model into a file (`service.scoring`)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.jobs import CallbackURL, LookupText

OutputFormat = Literal["csv", "parquet", "jsonl"]

MAX_PASSTHROUGH = 100
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 100, 100_000


class BatchPredictionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "concrete@production",
                    "dataset_id": "concrete",
                    "output_format": "csv",
                    "passthrough_columns": ["Age"],
                }
            ]
        },
    )

    model: LookupText = Field(
        min_length=1,
        max_length=255,
        description="The model: its id, `name@alias` or `name/versions/n`. A reference is "
        "resolved when the job is submitted: moving the alias later does not change what it "
        "scores with.",
    )
    dataset_id: LookupText = Field(
        min_length=1, max_length=255, description="The dataset to score: its id or name."
    )
    output_format: OutputFormat = Field(
        default="csv",
        description="The result file's format: csv, parquet or jsonl (one JSON object per line).",
    )
    passthrough_columns: list[LookupText] = Field(
        default_factory=list,
        max_length=MAX_PASSTHROUGH,
        description="Columns of the dataset copied into each result row beside the prediction "
        "(an id, say), in this order. Tables only.",
    )
    array: LookupText | None = Field(
        default=None,
        max_length=64,
        description="For an NPZ dataset: the array of samples to score (default `x`, else "
        "`x_test`). Its labels (`y` / `y_test`), if present, give the metrics.",
    )
    chunk_rows: int = Field(
        default=10_000,
        ge=MIN_CHUNK_ROWS,
        le=MAX_CHUNK_ROWS,
        description="Rows read, scored and written at a time: the worker's memory holds one "
        "chunk, whatever the dataset's size; progress moves chunk by chunk.",
    )
    callback_url: CallbackURL | None = Field(
        default=None,
        max_length=2083,
        json_schema_extra={"format": "uri"},
        description="When the job ends, dendrite POSTs its final state (as GET "
        "/v1/batch-predictions/{id} shows it) here, signed as training jobs' webhooks are.",
    )


class BatchProgress(BaseModel):
    rows_done: int = Field(description="Rows read so far, scored or not.")
    rows_total: int
    rows_failed: int = Field(description="Rows that could not be scored (see the errors file).")


class BatchLinks(BaseModel):
    result: str
    errors: str
    events: str


class BatchPredictionRead(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    model: LookupText = Field(description="The model as asked for (an id, name@alias, ...).")
    model_id: str = Field(description="The model it resolved to when the job was submitted.")
    dataset_id: str
    task: str
    output_format: OutputFormat
    passthrough_columns: list[str]
    array: str | None
    progress: BatchProgress
    metrics: dict[str, float] | None = Field(
        description="Metrics of the predictions against the dataset's target column(s), when "
        "it has them (over the rows that have a target value)."
    )
    result_bytes: int
    errors_bytes: int
    error: str | None
    worker: str | None
    attempts: int
    links: BatchLinks
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
