"""A large CSV described in chunks gives what the whole-table read gives: dtypes, statistics,
row counts and errors, whatever chunk boundaries fall where."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.core.errors import InvalidInput
from service.formats import csv_stats, tabular
from service.formats.limits import Limits
from tests.conftest import DATA

LIMITS = Limits(rows=10_000, columns=100, decompressed_bytes=1 << 30)


@pytest.fixture(autouse=True, params=[3, 7, 1000])
def chunk_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(csv_stats, "CHUNK_ROWS", request.param)
    return int(request.param)


def whole(path: Path) -> tuple[int, list[dict[str, Any]]]:
    frame = tabular.read_table(path, "csv", limits=LIMITS)
    return len(frame), tabular.describe(frame)


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["concrete_data.csv", "penguins.csv"])
def test_course_files_in_chunks_match_the_whole_read(name: str) -> None:
    assert same(csv_stats.describe_csv(DATA / name, LIMITS), whole(DATA / name))


@pytest.mark.parametrize(
    "text",
    [
        # integers, then a missing value in a later chunk (float64 as a whole)
        "a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(20)) + ",1.5\n3,\n",
        # numbers in the first chunks, text in a later one (a text column as a whole)
        "a,b\n" + "".join(f"{i},{i}\n" for i in range(5)) + "".join(
            f"x{i % 3},{i}\n" for i in range(10)
        ),
        # booleans, padded values, NA tokens, a string column that is mostly numbers
        "flag, size ,label\n"
        + "".join(f"{'true' if i % 2 else 'False'}, {i} ,{'NA' if i % 5 == 0 else 'cat'}\n"
                  for i in range(17)),
        # many floats: sums and variances in the same order as pandas', to the bit
        "x,y\n" + "".join(f"{v!r},{-v * 3.7!r}\n" for v in np.random.default_rng(0).random(3000)),
        # one row; a negative zero beside a zero
        "x\n1.5\n",
        "x\n0.0\n-0.0\n2.5\n",
        # huge integers stay exact
        "a\n" + "".join(f"{2**62 + i}\n" for i in range(9)),
    ],
)  # fmt: skip
def test_generated_tables_in_chunks_match_the_whole_read(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)

    assert same(csv_stats.describe_csv(path, LIMITS), whole(path))


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n" + "1,2\n" * 10 + "inf,3\n",  # an infinite value, named with its row
        "a,b\n" + "1,2\n" * 10 + "oops,3\n",  # a number column with a text value
        "a,b\n",  # no data rows
        "a,b\n1,2,3\n",  # a row longer than the header
        "a,a\n1,2\n",  # a name twice
    ],
)
def test_bad_tables_in_chunks_fail_as_the_whole_read_does(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as expected:
        whole(path)

    with pytest.raises(InvalidInput) as chunked:
        csv_stats.describe_csv(path, LIMITS)

    assert (chunked.value.detail, chunked.value.field) == (
        expected.value.detail,
        expected.value.field,
    )


def test_too_many_rows_fail_in_chunks(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n" + "1\n" * 30)

    with pytest.raises(InvalidInput, match="at most 20"):
        csv_stats.describe_csv(path, Limits(rows=20, columns=10, decompressed_bytes=1))


def test_describe_file_reads_large_csvs_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "a,b\n" + "".join(f"{v},{v % 7}\n" for v in np.arange(50) * 0.25))
    monkeypatch.setattr(csv_stats, "STREAM_ABOVE_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(tabular, "read_table", None)  # the whole-table read is not used

    rows, columns = csv_stats.describe_file(path, "csv", LIMITS)

    assert rows == 50 and [c["dtype"] for c in columns] == ["float", "float"]
    assert columns[0]["max"] == 12.25 and columns[1]["distinct"] == 28
