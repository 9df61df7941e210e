"""The recent-lookup window: entries last WINDOW_SECONDS, unless forgotten first."""

from service.core.recent import WINDOW_SECONDS, Recent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lasts_the_window_and_no_longer() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(maxsize=8, timer=clock)
    recent.put("key", 1)

    clock.now = WINDOW_SECONDS - 0.01
    assert recent.get("key") == 1
    clock.now = WINDOW_SECONDS
    assert recent.get("key") is None


def test_forget_drops_an_entry_at_once() -> None:
    recent: Recent[str, int] = Recent(maxsize=8)
    recent.put("key", 1)
    recent.put("other", 2)

    recent.forget("key")
    recent.forget("never stored")

    assert recent.get("key") is None and recent.get("other") == 2
