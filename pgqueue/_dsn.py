"""Passwords never reach a message: DSNs are shown masked, reasons scrubbed.

The DSNs that end up in messages are mostly malformed ones (that is why there
is a message), so the password is found with patterns, not with libpq: in a
URL's user info (``scheme://user:PASSWORD@host``), a ``password=`` query
parameter, or a ``password=`` keyword (``host=h password='…'``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "****"
SHORT = 4  # a shorter password is scrubbed only where a message quotes it

_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://", re.ASCII)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)
# A keyword value: quoted (backslash escapes, maybe unterminated) or up to a space.
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=?\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)


def _userinfo_span(dsn: str) -> tuple[int, int] | None:
    """Where the password of a URL's user info is, as ``(start, end)``."""
    scheme = _URL.match(dsn)
    assert scheme is not None
    at = dsn.rfind("@", scheme.end())
    colon = dsn.find(":", scheme.end(), at)
    if at < 0 or colon < 0:
        return None
    return colon + 1, at


def mask_dsn(dsn: str) -> str:
    """``dsn`` with every password replaced by ``****``; the rest as written."""
    if not _URL.match(dsn):
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
    span = _userinfo_span(dsn)
    if span is not None:
        dsn = dsn[: span[0]] + MASK + dsn[span[1] :]
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)


def _passwords(dsn: str) -> set[str]:
    """Each password in ``dsn``, as written and decoded."""
    found: list[str] = []
    if _URL.match(dsn):
        span = _userinfo_span(dsn)
        if span is not None:
            found.append(dsn[span[0] : span[1]])
        found += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn)]
        found += [unquote(p) for p in found]
    else:
        for match in _KEYWORD_PASSWORD.finditer(dsn):
            value = match.group(2)
            found.append(value)
            if value.startswith("'"):
                found.append(re.sub(r"\\(.)", r"\1", value.strip("'")))
    return {p for p in found if p}


def scrub(text: str, dsn: str) -> str:
    """``text`` (a driver's message about ``dsn``) without the passwords in it."""
    for password in sorted(_passwords(dsn), key=len, reverse=True):
        text = text.replace(f'"{password}"', f'"{MASK}"')
        if len(password) >= SHORT:
            text = text.replace(password, MASK)
    return text
