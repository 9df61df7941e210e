"""How long an API process trusts what it looked up a moment ago: `WINDOW_SECONDS`, for every cache.

Two lookups are remembered per process for that long, so that most requests need no database round
trip: which principal an API key acts for (`service.keys`), and a model's row for predictions
(`service.models`; for `name@alias` references, what the alias pointed at). A change made in the
same process takes effect at once: revoking a key or
deleting a model drops its entry when the transaction commits. A change made elsewhere (another API
process, `dendrite keys revoke`) is seen at most WINDOW_SECONDS later: until then a revoked key
still authenticates there, a deleted model may still answer predictions, and a moved alias may
still answer from the version it pointed at before.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

WINDOW_SECONDS = 2.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A thread-safe map whose entries are forgotten `seconds` after they were stored, or when
    `forget` drops them; the least recently used go first past `maxsize` entries."""

    def __init__(
        self,
        maxsize: int,
        seconds: float = WINDOW_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[K, V] = TTLCache(maxsize=maxsize, ttl=seconds, timer=timer)
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
