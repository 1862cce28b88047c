"""SIGTERM/SIGINT for a worker's event loop.

Installed only from the main thread (asyncio's rule); a signal already set to
``SIG_IGN`` is left alone, which is how a supervised child leaves SIGINT
(Ctrl-C in a terminal) to its supervisor.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalHandlers:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: list[signal.Signals] = []

    def install(self, loop: asyncio.AbstractEventLoop, callback: Callable[[str], None]) -> None:
        """Call ``callback(signal name)`` on each SIGTERM/SIGINT."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = loop
        for sig in SIGNALS:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            loop.add_signal_handler(sig, callback, sig.name)
            self._installed.append(sig)

    def remove(self) -> None:
        """Restore the previous handling; idempotent."""
        if self._loop is not None and not self._loop.is_closed():
            for sig in self._installed:
                self._loop.remove_signal_handler(sig)
        self._installed = []
        self._loop = None
