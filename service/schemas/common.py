"""Bodies every resource shares: a page of items and the error envelope."""

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable kind, e.g. invalid_input or not_found.")
    detail: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="JSON pointer or column name at fault.")
