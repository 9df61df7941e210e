"""Logging for the API and the workers: JSON lines (or text on a terminal), and every record
written while a job runs carries that job's id (`job_context`)."""

import logging
import logging.config
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["auto", "json", "text"]

_job_id: ContextVar[str | None] = ContextVar("dendrite_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "process", "message"]
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
# uvicorn repeats each message with terminal colours in this attribute: not worth a field.
JSON_SKIPPED = [*RESERVED_ATTRS, "color_message"]


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Records logged inside (in this thread or task) carry `job_id`."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Adds the current job's id, if any, to each record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = _job_id.get()
        if job_id is not None and not hasattr(record, "job_id"):
            record.job_id = job_id
        return True


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, followed by `[job <id>]` for a record written during a job."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        job_id = getattr(record, "job_id", None)
        return f"{text} [job {job_id}]" if job_id else text


def resolve(log_format: LogFormat, stream: TextIO | None = None) -> Literal["json", "text"]:
    """`auto`: text on a terminal, JSON otherwise (a container, a file, a log collector)."""
    if log_format != "auto":
        return log_format
    stream = stream or sys.stderr
    return "text" if stream.isatty() else "json"


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    if resolve(log_format) == "text":
        return TextFormatter()
    return JsonFormatter(
        JSON_FIELDS, rename_fields=JSON_NAMES, reserved_attrs=JSON_SKIPPED, json_ensure_ascii=False
    )


def config_dict(log_format: LogFormat, level: str | int = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: one stderr handler on the root logger, which
    uvicorn's and Celery's loggers propagate to. (uvicorn applies it in each of its processes.)"""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job": {"()": "service.core.logs.JobIdFilter"}},
        "formatters": {
            "default": {"()": "service.core.logs.make_formatter", "log_format": log_format}
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["job"],
            }
        },
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["default"], "level": level},
    }


def configure(log_format: LogFormat, level: str | int = "INFO") -> None:
    logging.config.dictConfig(config_dict(log_format, level))
