"""Structured log lines for the worker: ``event=success job=12 task=app.send ...``.

Everything logs to the ``pgqueue.worker`` logger (the rescuer to
``pgqueue.rescuer``). Per-job lines: ``start`` at DEBUG, ``success`` at INFO,
``retry`` at WARNING, ``dead`` at ERROR; ``claim`` (one line per batch) at DEBUG.
Callers check ``logger.isEnabledFor`` first so disabled lines cost nothing.

A line keeps its event and fields (``Line``), so ``JsonFormatter`` (the
worker's ``--log-format json``) writes the same fields as one JSON object.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger("pgqueue.worker")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class Line(str):
    """A ``k=v`` log line that remembers its event and fields (for ``JsonFormatter``)."""

    event: str
    fields: dict[str, Any]


def kv(event: str, **fields: Any) -> str:
    """``event=<event> k=v ...``, values quoted when they contain spaces or quotes."""
    fields = {k: v for k, v in fields.items() if v is not None}
    line = Line(" ".join([f"event={event}", *(f"{k}={_value(v)}" for k, v in fields.items())]))
    line.event, line.fields = event, fields
    return line


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return value if isinstance(value, (int, str, bool)) else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    then a worker line's ``event`` and fields, or ``message`` for other records
    (``exc``: the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, timezone.utc)
        out: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        msg = record.msg
        if isinstance(msg, Line) and not record.args:
            out["event"] = msg.event
            for key, value in msg.fields.items():
                out.setdefault(key, _json_value(value))
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def log(level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))


def worker_failed(worker_id: str, exc: Exception) -> None:
    """The claim loop stopped on an error that is no outage. A role without a privilege
    it needs is the operator's to fix, not a bug: one line, no traceback."""
    if getattr(exc, "sqlstate", None) == "42501":  # insufficient_privilege
        log(logging.ERROR, "worker_failed", worker=worker_id, error=str(exc).strip(),
            hint="the database role lacks a privilege (README: 'Least privilege')")  # fmt: skip
        return
    logger.exception(kv("worker_failed", worker=worker_id))
