"""``"package.module:attribute"`` -> the object it names (the CLI's APP argument,
and what spawned worker processes import)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from pgqueue._errors import ConfigurationError


def import_object(spec: str, default_attr: str = "app") -> Any:
    """Import ``module`` and return its ``attribute`` (``default_attr`` when omitted).

    Every failure is a one-line ``ConfigurationError``.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"APP must look like 'package.module:app', got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    obj = getattr(module, attr or default_attr, None)
    if obj is None:
        raise ConfigurationError(f"{module_name!r} has no attribute {attr or default_attr!r}")
    return obj
