"""SIGTERM in a pool process: while a job runs, a hand-back request instead of the end."""

import os
import signal

from workers import shutdown


def test_sigterm_while_a_job_runs_asks_for_a_hand_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        with shutdown.running_job():
            os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.requested.is_set()
    finally:
        shutdown.requested.clear()
    assert signal.getsignal(signal.SIGTERM) == before  # outside a job, SIGTERM ends the process
