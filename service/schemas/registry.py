"""Registered models: names, their versions (with lineage) and aliases, and alias moves."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A name or alias: starts with a letter or digit; letters, digits, '.', '_' and '-' after that.
# No '@' or '/', which separate a name from its alias or version in a model reference.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"


class RegisteredModelCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "concrete-strength", "description": "MPa"}]},
    )

    name: str = Field(pattern=NAME_PATTERN, description="Unique among your registered models.")
    description: str | None = Field(default=None, max_length=2000)


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64, description="A trained model's id.")


class AliasSet(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(ge=1, description="The version the alias points at from now on.")


class VersionRead(BaseModel):
    name: str
    version: int
    model_id: str
    aliases: list[str]
    created_by: str
    created_at: datetime
    lineage: dict[str, Any] = Field(
        description="Where the model came from: dataset (id, name, sha256), job (id, request, "
        "seed, validation and test split), final and test metrics, epochs, training seconds, "
        "Keras and TensorFlow versions."
    )


class RegisteredModelRead(BaseModel):
    name: str
    description: str | None
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(description="Each alias and the version it points at.")


class AliasMoveRead(BaseModel):
    alias: str
    from_version: int | None = Field(description="None: the alias was new.")
    to_version: int | None = Field(description="None: the alias was removed.")
    moved_by: str
    moved_at: datetime
