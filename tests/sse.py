"""Reading a text/event-stream in tests."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str
    id: str
    data: dict[str, Any]


def events(lines: Iterator[str]) -> Iterator[Event]:
    """Parse a text/event-stream (comments skipped) into its events, as they arrive."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                yield Event(fields["event"], fields["id"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
