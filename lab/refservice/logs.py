"""Structured logs: one JSON object per line on stdout.

Drills and on-call grep these lines, so every line carries a timestamp, a level
and the instance name. The access log is written directly (one dict, one
json.dumps, one write) because it runs for every request; everything else goes
through the standard logging module with a JSON formatter, including uvicorn's
own messages and psycopg's pool warnings.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

_instance = "-"
_stream: TextIO = sys.stdout


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def emit(level: str, fields: dict[str, Any]) -> None:
    """Write one JSON line; flushed at once so a killed process leaves its last words."""
    record = {"ts": _now(), "level": level, "instance": _instance}
    record.update(fields)
    _stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    _stream.flush()


class JsonFormatter(logging.Formatter):
    """Render a logging record as the same JSON line shape as the access log."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _now(),
            "level": record.levelname.lower(),
            "instance": _instance,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            fields.update(extra)
        if record.exc_info:
            fields["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(fields, default=str, separators=(",", ":"))


def setup(instance: str, stream: TextIO | None = None) -> None:
    """Route the root logger and uvicorn's loggers to JSON lines on stdout."""
    global _instance, _stream
    _instance = instance
    if stream is not None:
        _stream = stream
    handler = logging.StreamHandler(_stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # psycopg's pool logs every checkout at INFO; keep only its warnings.
    logging.getLogger("psycopg").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def get(name: str) -> logging.Logger:
    """A logger under the service's namespace; pass extra={"fields": {...}} for data."""
    return logging.getLogger(f"refservice.{name}")
