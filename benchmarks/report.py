"""benchmarks/RESULTS.md: the machine, then every figure with its baseline, ratio, goal and
verdict."""

from pathlib import Path

from benchmarks.harness import Run

HEADER = """# Benchmark results

Written by `.venv/bin/python -m benchmarks{options}` (see docs/benchmarks.md). Ratios compare
against a baseline measured in the same run; on a shared machine absolute times are noisy.

"""


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g} {unit}".strip()


def write(run: Run, machine: dict[str, str], path: Path, options: str) -> None:
    lines = [HEADER.format(options=options), "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in machine.items()]
    lines += [
        "",
        "## Figures",
        "",
        "| # | what | figure | baseline (same run) | ratio | goal | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in run.figures:
        baseline = (
            f"{_number(figure.baseline, figure.unit)} ({figure.baseline_name})"
            if figure.baseline is not None
            else "—"
        )
        ratio = f"{figure.ratio:.3g}" if figure.ratio is not None else "—"
        verdict = {True: "pass", False: "**miss**", None: "—"}[figure.passed]
        what = figure.name + (f"; {figure.note}" if figure.note else "")
        row = [figure.benchmark, what, _number(figure.value, figure.unit), baseline, ratio]
        lines.append("| " + " | ".join([*row, figure.goal or "—", verdict]) + " |")
    if run.notes.get("errors"):
        lines += ["", "## Benchmarks that failed to run", "", run.notes["errors"]]
    path.write_text("\n".join(lines) + "\n")
