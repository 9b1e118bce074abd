"""Progress reporting without Dagster: listeners receive ``(label, done, total, rate, eta)``.

Stages report through :class:`macro_data.pipeline.common.Progress`, which logs to the run log
and notifies the listeners registered here; the command line registers a terminal bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Listener = Callable[[str, int, int, float, float], None]
_listeners: list[Listener] = []


def add_listener(fn: Listener) -> None:
    _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def notify(label: str, done: int, total: int, rate: float, eta: float) -> None:
    for fn in list(_listeners):
        fn(label, done, total, rate, eta)


class TerminalBar:
    """A one-line progress bar on a terminal (nothing when the stream is not a TTY)."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self._last = 0.0

    def __call__(self, label: str, done: int, total: int, rate: float, eta: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(self.width * frac)
        line = (
            f"\r{label:<22} [{'#' * filled}{'.' * (self.width - filled)}] {100 * frac:5.1f}% "
            f"{done:,}/{total:,} {rate:,.0f}/s ETA {eta:4.0f}s"
        )
        self.stream.write(line + ("\n" if done >= total else ""))
        self.stream.flush()
