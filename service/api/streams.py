"""An event stream that holds one of its owner's stream slots (`service.events.SLOTS`) while it
is open: the JSON API's and the console's."""

from typing import Any

from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from service import events


class HeldStream(EventSourceResponse):
    """Gives the owner's event-stream slot back when the stream ends, however it ends."""

    def __init__(self, owner: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            events.SLOTS.give_back(self.owner)
