"""The benchmark suite runs and reports on tiny inputs (`--quick`); no timing is asserted."""

from pathlib import Path

import pytest

from benchmarks import __main__ as suite
from benchmarks import peer, report, upload
from benchmarks.harness import Figure, Run, machine, percentile


def test_figure_ratio_and_line_show_baseline_goal_and_verdict() -> None:
    figure = Figure("a", "job", 2.0, "s", goal="ratio <= 0.33", passed=False, baseline=8.0,
                    baseline_name="plain")  # fmt: skip

    assert figure.ratio == 0.25
    assert figure.line() == (
        "[a] job: 2 s (baseline plain: 8 s, ratio 0.25)  goal ratio <= 0.33: MISS"
    )
    assert Figure("d", "dispatch", None, "ms", note="no Redis").ratio is None


def test_percentile_picks_from_the_sorted_values() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]

    assert (percentile(values, 0.0), percentile(values, 0.5), percentile(values, 1.0)) == (
        1.0,
        3.0,
        5.0,
    )


def test_report_lists_machine_and_every_figure(tmp_path: Path) -> None:
    run = Run(work=tmp_path)
    run.figures += [
        Figure("c", "predict p50", 1.5, "ms", goal="<= 2 ms", passed=True, baseline=1.0,
               baseline_name="in-process"),
        Figure("g", "throughput", 30.0, "jobs/min", goal="report", note="fit 1.0"),
    ]  # fmt: skip
    described = machine()

    report.write(run, described, tmp_path / "RESULTS.md", " --quick")

    text = (tmp_path / "RESULTS.md").read_text()
    assert "python -m benchmarks --quick" in text
    assert f"- cores: {described['cores']}" in text and described["tensorflow"] != "?"
    assert "| c | predict p50 | 1.5 ms | 1 ms (in-process) | 1.5 | <= 2 ms | pass |" in text
    assert "| g | throughput; fit 1.0 | 30 jobs/min | — | — | report | — |" in text


def test_generated_csv_has_the_asked_size_and_a_header(tmp_path: Path) -> None:
    path = upload.make_csv(tmp_path / "big.csv", 200_000)

    assert 150_000 < path.stat().st_size < 260_000
    assert path.read_text().splitlines()[0] == ",".join(f'"{c}"' for c in upload.COLUMNS)


@pytest.mark.e2e
def test_quick_suite_runs_history_and_predictions(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"

    assert suite.main(["--quick", "--only", "c,f", "--results", str(results)]) == 0

    text = results.read_text()
    for expected in ("| c | predict 1 row over HTTP, p50", "| f | history of a 500-epoch job"):
        assert expected in text
    assert "failed to run" not in text


def test_synthetic_table_is_concrete_shaped_and_seeded(tmp_path: Path) -> None:
    path = peer.synthetic(tmp_path, 1000)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join([*peer.FEATURES, "y"]) and len(peer.FEATURES) == 8
    assert len(lines) == 1001 and all(len(line.split(",")) == 9 for line in lines[1:])
    (tmp_path / "again").mkdir()
    again = peer.synthetic(tmp_path / "again", 1000)
    assert again.read_text() == path.read_text()  # the same rows for the same size


@pytest.mark.e2e
def test_quick_batch_scoring_benchmark_measures_memory_and_throughput(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"

    assert suite.main(["--quick", "--only", "i", "--results", str(results)]) == 0

    text = results.read_text()
    assert "| i | batch scoring worker peak memory, 10,000 rows" in text
    assert "| i | batch scoring throughput, 10,000 rows CSV -> CSV" in text
    assert "failed to run" not in text
