"""Which job each pool process holds; the main process finds those of processes that died."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers import holds


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(holds, "folder", tmp_path)
    yield tmp_path


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_held_job_is_not_lost_while_its_process_lives(folder: Path) -> None:
    with holds.holding("job-1"):
        assert holds.lost() == []
        assert [p.name for p in folder.iterdir()] != []
    assert list(folder.iterdir()) == []  # the job ended: nothing to requeue


def test_the_job_of_a_process_that_died_is_lost_once(folder: Path) -> None:
    (folder / str(_dead_pid())).write_text("job-2")
    with holds.holding("job-3"):
        assert holds.lost() == ["job-2"]
        assert holds.lost() == []
