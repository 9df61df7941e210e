"""`errors.out_of_space`: which failures mean a full disk or database (rendered as 507)."""

import errno

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.core import errors


def _sqlite_full() -> OperationalError:
    """SQLite's own SQLITE_FULL ("database or disk is full"), as SQLAlchemy raises it: a
    database capped at its current size by max_page_count."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (blob BLOB)"))
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        connection.execute(text(f"PRAGMA max_page_count = {pages}"))
        with pytest.raises(OperationalError) as caught:
            connection.execute(text("INSERT INTO t VALUES (zeroblob(100000))"))
    engine.dispose()
    return caught.value


def test_out_of_space_recognizes_a_full_disk_and_a_full_database() -> None:
    postgres = psycopg.errors.DiskFull("could not extend file: No space left on device")

    assert errors.out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    assert errors.out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert errors.out_of_space(_sqlite_full())
    assert errors.out_of_space(OperationalError("INSERT ...", {}, postgres))


def test_out_of_space_looks_through_causes_and_groups() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as error:
            raise RuntimeError("error parsing the body") from error
    except RuntimeError as wrapped:
        assert errors.out_of_space(wrapped)
    assert errors.out_of_space(ExceptionGroup("several", [ValueError("x"), full]))


def test_out_of_space_is_false_for_other_failures() -> None:
    locked = OperationalError("INSERT ...", {}, Exception("database is locked"))
    unique = OperationalError("INSERT ...", {}, psycopg.errors.UniqueViolation("duplicate"))

    assert not errors.out_of_space(FileNotFoundError(errno.ENOENT, "missing"))
    assert not errors.out_of_space(OSError(errno.EIO, "I/O error"))
    assert not errors.out_of_space(locked)
    assert not errors.out_of_space(unique)
    assert not errors.out_of_space(ValueError("No space left on device"))
