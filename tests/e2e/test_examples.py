"""Each script in examples/ runs against `dendrite serve` in its quick mode (tiny epochs and
repeats): the flows docs/course.md describes work end to end."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("concrete.py", "predicted strength"),
        ("mnist.py", "test accuracy"),
        ("vanishing_gradient.py", "val_loss by epoch"),
        ("assignment.py", "mean test MSE over 2 repeats"),
    ],
)
def test_example_runs_in_quick_mode(embedded: Service, script: str, expected: str) -> None:
    key = embedded.client.headers["Authorization"].removeprefix("Bearer ")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--url", embedded.base_url],
        env={"DENDRITE_API_KEY": key, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr + embedded.log_text()
    assert expected in done.stdout, done.stdout
