"""Structured log lines for the worker: ``event=success job=12 task=app.send ...``.

Everything logs to the ``pgqueue.worker`` logger (the rescuer to
``pgqueue.rescuer``). Per-job lines: ``start`` at DEBUG, ``success`` at INFO,
``retry`` at WARNING, ``dead`` at ERROR; ``claim`` (one line per batch) at DEBUG.
Callers check ``logger.isEnabledFor`` first so disabled lines cost nothing.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("pgqueue.worker")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def kv(event: str, **fields: Any) -> str:
    """``event=<event> k=v ...``, values quoted when they contain spaces or quotes."""
    parts = [f"event={event}"]
    parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


def log(level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))
