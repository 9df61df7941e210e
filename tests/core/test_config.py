"""Settings that contradict each other are refused when they load."""

import pytest
from pydantic import ValidationError

from service.core.config import Settings


def test_settings_refuse_a_time_limit_redis_would_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DENDRITE_JOB_TIME_LIMIT", str(7 * 3600))
    with pytest.raises(ValidationError, match="DENDRITE_VISIBILITY_TIMEOUT"):
        Settings()
    monkeypatch.setenv("DENDRITE_VISIBILITY_TIMEOUT", str(8 * 3600))
    assert Settings().job_time_limit == 7 * 3600
