"""Round-trip edits of the registry file, shared by ``pin`` and ``register``: one entry changes, nothing else.

The file is parsed with ruamel.yaml's round-trip loader, which keeps comments, key order, quoting
and flow or block styles; the caller changes one entry in place (or appends one). In the file that
is written, the lines of that entry come from ruamel.yaml's output and every other line is the
original's, byte for byte: ruamel.yaml would otherwise re-wrap long flow sequences and re-space
some comments of entries nobody touched. (A registry whose ``datasets`` list is not a block list of
block mappings, such as ``datasets: []``, is written as ruamel.yaml outputs it, comments kept.)

Before anything is written, the new text is read back with the project's strict loader
(:mod:`macro_data.config_yaml`): it must give the same document as ruamel.yaml's whole output (else
that output is written) and pass registry validation. The write is atomic
(:func:`macro_data.files.atomic_write`), keeps the file's mode, and happens under a lock held from
the read on, so two concurrent edits cannot lose one another.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ruamel.yaml
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import MappingNode, SequenceNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from macro_data import config_yaml, paths
from macro_data.external import locks
from macro_data.external.cache import Cache
from macro_data.external.errors import RegistryError
from macro_data.external.registry import parse_registry
from macro_data.files import atomic_write

_LOCK_TIMEOUT_S = 60.0
_STR_TAG = "tag:yaml.org,2002:str"


def editable_path(registry_path: str | os.PathLike | None) -> Path:
    """The registry file ``pin`` and ``register`` may edit: never the read-only copy inside the package.

    Parameters
    ----------
    registry_path
        A registry file; None for the default (``$MACRO_DATA_REGISTRY``, else ``datasets/external.yaml``).

    Returns
    -------
    Path
        The file.

    Raises
    ------
    RegistryError
        For the registry shipped with the installed package.
    """
    path = Path(registry_path) if registry_path is not None else paths.registry_path()
    if paths.is_packaged(path):
        raise RegistryError(
            f"{path} is the registry shipped with the package (read-only); copy it to "
            f"{paths.LOCAL_REGISTRY} in the working directory (or point $MACRO_DATA_REGISTRY "
            f"or --registry at a copy) and edit that"
        )
    return path


def update_entry(
    path: Path, name: str, change: Callable[[CommentedMap], None], *, root: str | os.PathLike | None = None
) -> None:
    """Change the entry ``name`` of the registry file in place and write the file (see the module docstring).

    Parameters
    ----------
    path
        The registry file (from :func:`editable_path`).
    name
        The entry to change.
    change
        Called with the entry as a round-trip mapping, to change in place (:func:`set_keys` sets keys).
    root
        The data root whose ``external/locks`` holds the registry's lock.

    Raises
    ------
    RegistryError
        When the file has no entry ``name`` or the edited registry is invalid; nothing is written then.
    """

    def edit(datasets: CommentedSeq) -> int:
        index = next((i for i, d in enumerate(datasets) if d.get("name") == name), None)
        if index is None:
            raise RegistryError(f"registry {path}: no entry named {name!r}; nothing was written")
        change(datasets[index])
        return index

    _rewrite(path, edit, root)


def append_entry(path: Path, entry: dict[str, Any], *, root: str | os.PathLike | None = None) -> None:
    """Append ``entry`` to the registry file, after a blank line, and write the file.

    Parameters
    ----------
    path
        The registry file (from :func:`editable_path`).
    entry
        The new entry as plain data; its mappings and lists of scalars are written in flow style
        (``csv: {header_rows: 0}``, ``columns: [a, b]``).
    root
        The data root whose ``external/locks`` holds the registry's lock.

    Raises
    ------
    RegistryError
        When the registry with the new entry is invalid; nothing is written then.
    """

    def edit(datasets: CommentedSeq) -> int:
        datasets.append(_node(entry))
        return len(datasets) - 1

    _rewrite(path, edit, root)


def set_keys(mapping: CommentedMap, values: dict[str, Any], at: int) -> None:
    """Set ``values`` in a round-trip ``mapping``.

    Parameters
    ----------
    mapping
        The mapping to change.
    values
        Keys and plain values. A key already in ``mapping`` keeps its place and its comment; new
        keys are inserted in the order given, the first at position ``at``.
    at
        Where the first new key goes (0: first; ``len(mapping)``: last).
    """
    if not mapping:  # written `{}`, a flow mapping, which ruamel.yaml forgets when it is empty
        mapping.fa.set_flow_style()
    for key, value in values.items():
        if key in mapping:
            mapping[key] = _node(value)
        else:
            mapping.insert(at, key, _node(value))
            at += 1


def _node(value: Any) -> Any:
    """Plain data as ruamel.yaml will write it: collections of scalars in flow style, as the registry is
    written, and strings quoted where a YAML 1.1 reader would take them for something else."""
    if isinstance(value, dict):
        node = CommentedMap((k, _node(v)) for k, v in value.items())
        items = list(node.values())
    elif isinstance(value, (list, tuple)):
        node = CommentedSeq(_node(v) for v in value)
        items = list(node)
    elif isinstance(value, str) and yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        # ruamel.yaml writes YAML 1.2, where e.g. `on` and `2024-01-01` are strings; the project reads
        # the registry with PyYAML (YAML 1.1), where they are a boolean and a date
        return DoubleQuotedScalarString(value)
    else:
        return value
    if not any(isinstance(v, (dict, list)) for v in items):
        node.fa.set_flow_style()
    return node


def _round_trip(text: str) -> tuple[YAML, SequenceNode | None]:
    """A round-trip ruamel.yaml set to the file's indentation, and the ``datasets`` list's node if it is a
    block list of block mappings (the layout the splice of :func:`_entry_lines` handles)."""
    rt = YAML()  # round trip: comments, key order and collection styles are kept
    rt.preserve_quotes = True
    rt.width = 4096  # long URLs and citations stay on one line, as written
    datasets = _datasets_node(rt, text)
    if datasets is not None:
        dash, key = datasets.start_mark.column, datasets.value[0].start_mark.column
        rt.indent(mapping=max(2, key - dash), sequence=key, offset=dash)
    return rt, datasets


def _datasets_node(rt: YAML, text: str) -> SequenceNode | None:
    root = rt.compose(text)
    node = next((v for k, v in root.value if k.value == "datasets"), None) if isinstance(root, MappingNode) else None
    if not isinstance(node, SequenceNode) or node.flow_style or not node.value:
        return None
    if any(not isinstance(item, MappingNode) or item.flow_style for item in node.value):
        return None
    return node


def _entry_lines(datasets: SequenceNode) -> list[tuple[int, int]]:
    """Each entry's lines ``[first, end)``: from its first key to its last value, without the comments and
    blank lines after it (they introduce the next entry)."""
    spans = []
    for item in datasets.value:
        node = item
        while isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
            node = node.value[-1][1] if isinstance(node, MappingNode) else node.value[-1]
        end = node.end_mark  # a block scalar ends at the start of the next line
        spans.append((item.start_mark.line, end.line + (1 if end.column > 0 else 0)))
    return spans


def _splice(original: str, old: SequenceNode, dumped: str, new: SequenceNode, index: int) -> str:
    """``original`` with entry ``index`` taken from ``dumped`` (inserted after the last entry if new)."""
    before, after = _entry_lines(old), _entry_lines(new)
    lines, out = original.splitlines(keepends=True), dumped.splitlines(keepends=True)
    start, end = after[index]
    if index < len(before):
        a, b = before[index]
        block = out[start:end]
    else:
        a = b = before[-1][1]
        block = ["\n", *out[start:end]]
    return "".join(lines[:a] + block + lines[b:])


def _rewrite(path: Path, edit: Callable[[CommentedSeq], int], root: str | os.PathLike | None) -> None:
    key = "registry-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with locks.hold(Cache(root).locks_dir, key, timeout=_LOCK_TIMEOUT_S, what=f"registry {path}"):
        original = path.read_text(encoding="utf-8")
        if not original.endswith("\n"):
            original += "\n"
        try:
            rt, old = _round_trip(original)
            document = rt.load(original)
        except ruamel.yaml.YAMLError as exc:
            raise RegistryError(f"registry {path}: invalid YAML: {exc}") from None
        index = edit(document["datasets"])
        buffer = io.StringIO()
        rt.dump(document, buffer)
        dumped = buffer.getvalue()
        intended = config_yaml.loads(dumped, "the registry")
        new = _datasets_node(rt, dumped)
        text = dumped
        if old is not None and new is not None and len(new.value) == len(old.value) + (index == len(old.value)):
            text = _splice(original, old, dumped, new, index)
            try:
                if config_yaml.loads(text, "the registry") != intended:
                    text = dumped
            except yaml.YAMLError:
                text = dumped
        parse_registry(intended, source=str(path))  # never write an invalid registry
        atomic_write(path, text.encode("utf-8"), mode=path.stat().st_mode & 0o777)  # the mode is the user's choice


__all__ = ["append_entry", "editable_path", "set_keys", "update_entry"]
