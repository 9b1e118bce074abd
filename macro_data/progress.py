"""Progress reporting without Dagster: one :class:`Tracker` per stage, and listeners.

A stage reports through a :class:`Tracker`, which logs to the run log (every 2 s) and notifies the
listeners registered here with ``(label, done, total, rate, eta)``; the command line registers a
terminal bar (:class:`TerminalBar`).
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


class Tracker:
    """Progress of one stage: samples done, rate, ETA, to the run log and to the listeners.

    ``done`` starts at ``already`` (samples reused or resumed, not computed now); the rate counts
    only the samples computed by this run.
    """

    def __init__(self, total: int, label: str, log: Callable[[str], None] | None, already: int = 0):
        self.total, self.label, self.log, self.already = total, label, log, already
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        elapsed = now - self.t0
        rate = (done - self.already) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        notify(self.label, done, self.total, rate, eta)
        if self.log is None or (done < self.total and now - self._last < 2.0):
            return
        self._last = now
        self.log(
            f"{self.label}: {done}/{self.total} samples ({100 * done / self.total:.0f}%), "
            f"{rate:,.0f} samples/s, ETA {eta:.0f} s"
        )


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
