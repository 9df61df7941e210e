"""Datasets: an upload's description, its preview, and what blocks its deletion."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import ErrorBody


class Dependents(BaseModel):
    count: int
    ids: list[str] = Field(description="The newest first; at most 20.")


DependentKind = Literal["jobs", "models", "sweeps", "model_versions"]


class DatasetConflict(ErrorBody):
    dependents: dict[Literal["jobs", "models", "sweeps", "model_versions"], Dependents] | None = (
        Field(
            default=None,
            description="What depends on the dataset and would be deleted with it (cascade=true).",
        )
    )


class ColumnRead(BaseModel):
    name: str
    dtype: str = Field(
        description="'float', 'integer', 'string' or 'boolean' (tabular); numpy dtype (NPZ)."
    )
    missing: int = 0
    shape: list[int] | None = Field(default=None, description="NPZ arrays: the array's shape.")
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    distinct: int | None = Field(default=None, description="Number of distinct values.")
    values: list[Any] | None = Field(
        default=None,
        description="Distinct values with their counts, for string columns and labels.",
    )


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    format: Literal["csv", "parquet", "npz"]
    size_bytes: int
    sha256: str
    rows: int
    columns: list[ColumnRead]
    created_at: datetime


class DatasetPreview(BaseModel):
    dataset_id: str
    rows: list[dict[str, Any]]
