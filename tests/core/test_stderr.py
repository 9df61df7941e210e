"""`dendrite serve`'s stderr filter: TensorFlow's INFO and WARNING notes on loading are dropped,
from the process and from a child it starts; everything else (TensorFlow's errors too) shows."""

import subprocess
import sys

TENSORFLOW_ERROR = "E0000 00:00:1796642195.218890   10768 cuda_platform.cc:52] cuInit failed"
CHILD_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796642195.218890   10768 port.cc:153] oneDNN custom operations are on.",
    "W0000 00:00:1796642195.218890   10768 cpu_feature_guard.cc:227] a note",
    TENSORFLOW_ERROR,
    "a worker's log line",
]

# The child writes each argument as a line to file descriptor 2, as TensorFlow's C++ does.
CHILD = "import os, sys\nfor line in sys.argv[1:]:\n    os.write(2, line.encode() + b'\\n')"
PARENT = f"""
import subprocess, sys
from service.core import stderr

notes = stderr.Filter()
notes.install()
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}, *sys.argv[1:]])
notes.start()
child.wait()
print("the API's own line", file=sys.stderr, flush=True)
notes.close()
print("after close", file=sys.stderr, flush=True)
"""


def test_serve_stderr_drops_tensorflow_notes_and_keeps_the_rest() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PARENT, *CHILD_LINES], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        TENSORFLOW_ERROR,
        "a worker's log line",
        "the API's own line",
        "after close",
    ]
