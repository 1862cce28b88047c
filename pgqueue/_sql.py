"""Named SQL queries, loaded from ``pgqueue/sql/*.sql``.

Each query sits under a ``-- name: <name>`` header line, followed by a
one-line purpose comment; queries are looked up by name.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_FRAGMENT = re.compile(r"\{(\w+)\}")


@functools.cache
def _load() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in resources.files("pgqueue.sql").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        parts = _HEADER.split(entry.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise RuntimeError(f"duplicate SQL query name {name!r}")
            queries[name] = body.strip().rstrip(";")
    # Fragments (e.g. the job column list) are spliced in by name: static text only.
    raw = dict(queries)
    for name, text in raw.items():
        queries[name] = _splice(raw, text)
    return queries


def _splice(raw: dict[str, str], text: str) -> str:
    """``text`` with its fragments spliced in, fragments within fragments too."""
    return _FRAGMENT.sub(lambda m: _splice(raw, _fragment(raw, m.group(1))), text)


def _fragment(queries: dict[str, str], name: str) -> str:
    body = queries[name]
    # Drop the purpose comment line of the fragment itself.
    return "\n".join(line for line in body.splitlines() if not line.startswith("--"))


def query(name: str) -> str:
    """The text of the named query."""
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r}") from None


def names() -> list[str]:
    return sorted(_load())
