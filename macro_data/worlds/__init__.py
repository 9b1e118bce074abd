"""The simulator bank: six worlds (lss, var, nk, rbc, switching, zlb). No Dagster import here.

``get_world(name)`` returns the world instance; ``WORLD_IDS`` lists them in a fixed order that
is only a display order (streams are keyed by name, never by position).
"""

from __future__ import annotations

import importlib

from macro_data.errors import WorldError
from macro_data.worlds.base import World

WORLD_IDS: tuple[str, ...] = ("lss", "var", "nk", "rbc", "switching", "zlb")


def get_world(name: str) -> World:
    """The world called ``name``; :class:`WorldError` for an unknown name."""
    if name not in WORLD_IDS:
        raise WorldError(f"unknown world {name!r}; known worlds: {', '.join(WORLD_IDS)}")
    return importlib.import_module(f"macro_data.worlds.{name}").WORLD


__all__ = ["WORLD_IDS", "World", "get_world"]
