"""`dendrite serve`'s stderr, and its worker's, without TensorFlow's notes on loading: TensorFlow
2.19 and later writes them before its logging is set up, so they ignore TF_CPP_MIN_LOG_LEVEL
(tensorflow/tensorflow#100442). Its INFO and WARNING lines are dropped; its errors still show."""

import contextlib
import os
import re
import threading
from typing import BinaryIO

TENSORFLOW_NOTE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] "
)


class Filter:
    """`install()` points file descriptor 2 at a pipe (children started afterwards inherit it);
    `start()` forwards what comes through to the original stderr, less TensorFlow's notes;
    `close()` puts the original back and forwards what is left."""

    def __init__(self) -> None:
        self.original = -1
        self.pipe: BinaryIO | None = None
        self.thread: threading.Thread | None = None

    def install(self) -> None:
        self.original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.pipe = os.fdopen(read_end, "rb")

    def start(self) -> None:
        """Separate from `install`: a thread must not run while `subprocess` forks with a
        `preexec_fn`."""
        self.thread = threading.Thread(target=self._forward, daemon=True)
        self.thread.start()

    def close(self, timeout: float = 5) -> None:
        """Once the children that inherited the pipe have exited."""
        os.dup2(self.original, 2)
        if self.thread is not None:
            self.thread.join(timeout)

    def _forward(self) -> None:
        assert self.pipe is not None
        for line in self.pipe:
            if TENSORFLOW_NOTE.match(line):
                continue
            # stderr closed: keep draining, or the writers would block on a full pipe.
            with contextlib.suppress(OSError):
                _write_all(self.original, line)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
