"""Issue 2's figures (the concrete job against the plain script, single-row predictions): now
benchmarks (a) and (c) of the suite. Kept as a shortcut for `python -m benchmarks --only a,c`."""

import sys

from benchmarks.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "a,c", *sys.argv[1:]]))
