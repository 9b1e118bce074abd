"""The simulator bank: the six built-in worlds plus the catalog's (model files, registered worlds).
No Dagster import here.

``get_world(name)`` returns the world instance; ``world_ids()`` lists every world of the catalog
(built-ins first); ``WORLD_IDS`` lists the six built-ins. The order is only a display order:
streams are keyed by name, never by position. See :mod:`macro_data.worlds.catalog`.
"""

from __future__ import annotations

from macro_data.worlds.base import World
from macro_data.worlds.catalog import BUILTIN_IDS, builtin_world, catalog

WORLD_IDS: tuple[str, ...] = BUILTIN_IDS


def get_world(name: str) -> World:
    """The world called ``name``.

    Parameters
    ----------
    name : str
        A world id of the catalog (:func:`world_ids`), e.g. ``"nk"``.

    Returns
    -------
    World
        The world instance (shared: the catalog keeps one per id).

    Raises
    ------
    WorldError
        For an unknown name (the message lists the known worlds), or the error of a broken model
        file (file, line, column, problem).
    """
    if name in BUILTIN_IDS:  # a built-in wins over any model file or entry point of its id: no scan needed
        return builtin_world(name)
    return catalog().get(name)


def world_ids() -> tuple[str, ...]:
    """Every world id of the catalog, broken model files included, built-ins first.

    Returns
    -------
    tuple of str
        The ids in display order: the built-ins (:data:`WORLD_IDS`), then the others by id.
    """
    return catalog().ids


__all__ = ["WORLD_IDS", "World", "get_world", "world_ids"]
