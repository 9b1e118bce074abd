"""The catalog of worlds: the six built-ins, every model file, and worlds other packages register.

Where worlds come from, in this order (a world id is defined once; a clash is an error of the
later definition):

1. the built-in worlds (``lss``, ``var``, ``nk``, ``rbc``, ``switching``, ``zlb``);
2. model files ``<world_id>.yaml``: first the ones in ``./datasets/worlds/`` of the working
   directory (``$MACRO_DATA_WORLDS``, a folder, replaces it), then the ones shipped with the
   package (``datasets/worlds/`` in git); a local file overrides a shipped one of the same name;
3. Python worlds registered by installed distributions under the entry-point group
   ``macro_data.worlds`` (an entry point names a :class:`~macro_data.worlds.base.World` instance, a
   ``World`` subclass, or a function returning one; its name is the world id).

A model file that does not load is kept in the catalog as a *broken* world: it appears in the
world list (so the UI shows the partition), and asking for it raises its error (file, line,
column, problem); every other world works as before and the code location always loads.

The catalog is read anew when a file changes (the folders' listings and modification times are
its cache key), so a new or edited model file needs no code change and no restart of a process
that asks again.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from macro_data import paths
from macro_data.errors import MacroDataError, WorldError
from macro_data.worlds.base import World
from macro_data.worlds.declared import load_world_file
from macro_data.worlds.ids import BUILTIN_IDS, WORLD_ID

ENTRY_POINT_GROUP = "macro_data.worlds"


@dataclass(frozen=True)
class Source:
    """Where a world is defined: ``builtin``, ``model file`` (with its path) or ``entry point``."""

    kind: str
    where: str


@dataclass
class Catalog:
    """Worlds by id, in display order (built-ins first, then the others by id)."""

    worlds: dict[str, World] = field(default_factory=dict)
    broken: dict[str, MacroDataError] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # later definitions of an id already taken (ignored)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every world id, broken ones included."""
        others = sorted(set(self.worlds) | set(self.broken) - set(BUILTIN_IDS))
        return (*[w for w in BUILTIN_IDS if w in self.worlds], *[w for w in others if w not in BUILTIN_IDS])

    def get(self, world_id: str) -> World:
        """The world ``world_id``.

        Parameters
        ----------
        world_id : str
            A world id of :attr:`ids`.

        Returns
        -------
        World

        Raises
        ------
        MacroDataError
            For a broken world, its own error (a :class:`~macro_data.errors.WorldFileError` for a
            model file, naming file, line, column and problem; a :class:`WorldError` for an entry point).
        WorldError
            For an unknown id; the message lists the known ones.
        """
        if world_id in self.worlds:
            return self.worlds[world_id]
        if world_id in self.broken:
            raise self.broken[world_id]
        raise WorldError(f"unknown world {world_id!r}; known worlds: {', '.join(self.ids)}")


def model_folders() -> list[Path]:
    """Folders searched for model files, first wins: ``$MACRO_DATA_WORLDS`` or ``./datasets/worlds``,
    then the shipped ones.

    Returns
    -------
    list of Path
        The local folder (whether it exists or not), then the package's ``worlds`` folder if shipped.
    """
    local = Path(os.environ["MACRO_DATA_WORLDS"]) if os.environ.get("MACRO_DATA_WORLDS") else None
    folders = [local or Path.cwd() / paths.LOCAL_DATASETS / "worlds"]
    try:
        folders.append(Path(str(paths.packaged("worlds"))))
    except paths.MissingResourceError:
        pass
    return folders


def model_files() -> dict[str, Path]:
    """``{world id: model file}`` over :func:`model_folders` (the first folder holding a name wins).

    Returns
    -------
    dict of str to Path
        ``*.yaml`` files by stem; ids are not checked here (:func:`build` does).
    """
    out: dict[str, Path] = {}
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            out.setdefault(path.stem, path)
    return out


def builtin_world(world_id: str) -> World:
    """The built-in world ``world_id`` (one of :data:`BUILTIN_IDS`): the instance the catalog holds."""
    return importlib.import_module(f"macro_data.worlds.{world_id}").WORLD


def _from_entry_point(ep: metadata.EntryPoint) -> World:
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, World):
        obj = obj()
    elif callable(obj) and not isinstance(obj, World):
        obj = obj()
    if not isinstance(obj, World):
        raise WorldError(
            f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}) is not a macro_data World "
            f"(got {type(obj).__name__}); it must name a World instance, a World subclass or a function returning one"
        )
    if obj.name != ep.name:
        raise WorldError(
            f"entry point {ep.name!r} = {ep.value!r} names a world called {obj.name!r}: the names must agree"
        )
    return obj


_entry_points_cache: tuple[tuple, list[metadata.EntryPoint]] | None = None


def _path_state() -> tuple:
    """``sys.path`` with each folder's mtime: installing or removing a distribution adds or removes its
    ``.dist-info`` folder, which changes the mtime of the folder holding it."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def _entry_points() -> list[metadata.EntryPoint]:
    # Scanning every installed distribution's metadata costs about 50 ms, and the catalog is consulted
    # dozens of times per run: rescan only when a folder of sys.path changed.
    global _entry_points_cache
    state = _path_state()
    cached = _entry_points_cache
    if cached is not None and cached[0] == state:
        return cached[1]
    found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    _entry_points_cache = (state, found)
    return found


def build() -> Catalog:
    """Read every source (see the module docstring).

    Returns
    -------
    Catalog
        A new catalog; nothing is raised for a broken model file or entry point: its error is
        kept in :attr:`Catalog.broken` and clashes in :attr:`Catalog.conflicts`.
    """
    cat = Catalog()
    for w in BUILTIN_IDS:
        cat.worlds[w] = builtin_world(w)
        cat.sources[w] = Source("builtin", f"macro_data.worlds.{w}")
    for w, path in model_files().items():
        if w in cat.sources:
            cat.conflicts.append(f"world file {path}: {w!r} is a built-in world id; the file is ignored")
            continue
        cat.sources[w] = Source("model file", str(path))
        if not WORLD_ID.fullmatch(w):
            cat.broken[w] = WorldError(
                f"world file {path}: the file name {w!r} is not a world id ([a-z][a-z0-9_]*, at most 64 characters)"
            )
            continue
        try:
            cat.worlds[w] = load_world_file(path)
        except MacroDataError as exc:
            cat.broken[w] = exc
    for ep in _entry_points():
        if ep.name in cat.sources:
            where = cat.sources[ep.name]
            cat.conflicts.append(
                f"entry point {ep.name!r} ({ep.value}, group {ENTRY_POINT_GROUP}) clashes with the world of "
                f"{where.kind} {where.where}; it is ignored"
            )
            continue
        cat.sources[ep.name] = Source("entry point", ep.value)
        try:
            cat.worlds[ep.name] = _from_entry_point(ep)
        except Exception as exc:  # noqa: BLE001 - a plug-in's failure is that world's problem only
            cat.broken[ep.name] = (
                exc
                if isinstance(exc, MacroDataError)
                else WorldError(
                    f"world {ep.name!r} from entry point {ep.value!r} does not load: {type(exc).__name__}: {exc}"
                )
            )
    return cat


_lock = threading.Lock()
_cached: tuple[tuple, Catalog] | None = None


def _key() -> tuple:
    files = []
    for folder in model_folders():
        if folder.is_dir():
            files += [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.yaml"))]
    return (tuple(files), tuple((ep.name, ep.value) for ep in _entry_points()))


def catalog() -> Catalog:
    """The current catalog (rebuilt when a model file or an entry point changed).

    Returns
    -------
    Catalog
        Shared by all callers until the next change; thread-safe.
    """
    global _cached
    key = _key()
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, build())
        return _cached[1]
