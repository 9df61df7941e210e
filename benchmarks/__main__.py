"""Run the benchmark suite: `.venv/bin/python -m benchmarks [--quick] [--only a,c] [--mnist PATH]`.

Prints each figure as it is measured and writes benchmarks/RESULTS.md (or `--results PATH`).
"""

import argparse
import shutil
import sys
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks import (
    concrete,
    dispatch,
    history,
    mnist,
    peer,
    predict,
    report,
    scoring,
    throughput,
    upload,
)
from benchmarks.harness import DATA, Run, Service, embedded, machine

ALL = "abcdefghi"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny inputs: checks the code runs")
    parser.add_argument("--only", default=ALL, help="benchmarks to run, e.g. 'a,c' (default all)")
    parser.add_argument(
        "--mnist",
        type=Path,
        default=DATA / "mnist_small.npz",
        help="MNIST .npz for (b); default the repository's 3,000/1,000-image subset",
    )
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args(argv)
    chosen = [b for b in ALL if b in args.only.replace(",", "")]
    run = Run(quick=args.quick, mnist_path=args.mnist)
    print(f"scratch folder: {run.work}", flush=True)
    described = machine()
    errors: list[str] = []

    def attempt(name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            errors.append(f"- ({name}) {traceback.format_exc().strip().splitlines()[-1]}")
            traceback.print_exc()

    with ExitStack() as stack:
        service: Service | None = None
        if set(chosen) & set("abcdfh"):
            service = stack.enter_context(embedded(run.work / "embedded"))
        on_embedded: dict[str, Callable[[Run, Service], None]] = {
            "a": concrete.run,
            "b": mnist.run,
            "c": predict.run,
            "d": dispatch.run_embedded,
            "f": history.run,
            "h": peer.run,
        }
        for name in chosen:
            if name in on_embedded and service is not None:
                attempt(name, lambda step=on_embedded[name]: step(run, service))
    if "d" in chosen:
        attempt("d", lambda: dispatch.run_stack(run))
    if "e" in chosen:
        attempt("e", lambda: upload.run(run))
    if "g" in chosen:
        attempt("g", lambda: throughput.run(run))
    if "i" in chosen:
        attempt("i", lambda: scoring.run(run))
    if errors:
        run.notes["errors"] = "\n".join(errors)
    options = " ".join(
        [
            *(["--quick"] if args.quick else []),
            *([f"--only {args.only}"] if chosen != list(ALL) else []),
        ]
    )
    report.write(run, described, args.results, f" {options}" if options else "")
    print(f"wrote {args.results}", flush=True)
    if not args.keep:
        shutil.rmtree(run.work, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
