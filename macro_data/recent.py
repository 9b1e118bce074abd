"""Recent results of pure functions, kept in this process for a later caller with the same input.

A world run computes some things twice, one step apart, in one process: the held-out regions
(``world_splits``, then its check), the redrawn reproducibility subset (the draws check, then
the simulation check) and a batch's model solution (validation, simulation and impulse
responses of the same draws, :class:`macro_data.worlds.base.LastFew`). :class:`Recent` keeps
the latest results by a key holding everything that decides them, bounded in count, the least
recently used dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """At most ``size`` values by key, least recently used dropped first; safe across threads."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
