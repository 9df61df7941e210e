"""API keys as the admin-only /v1/keys API shows them: never the key, except once, on creation."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"owner": "alice"}, {"owner": "ops", "admin": True}]},
    )

    owner: str = Field(
        min_length=1,
        max_length=64,
        description="Who the key acts for: 1 to 64 letters, digits and '_.@-', starting with a "
        "letter or digit. Keys of one owner share its datasets, jobs and models.",
    )
    admin: bool = Field(default=False, description="An admin key sees every owner's things.")


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    owner: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")


class KeyCreated(KeyRead):
    key: str = Field(description="The key itself. It is shown this once: dendrite keeps its hash.")
