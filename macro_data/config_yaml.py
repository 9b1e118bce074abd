"""Strict, safe YAML for the project's hand-written files (dataset recipes, the external-data registry).

Safe tags only, no anchors or aliases (nothing here needs them and they allow expansion bombs), no
duplicate mapping keys (the second would silently win), a size cap checked before parsing, and
every failure raised as the caller's error class naming the file, the line and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and duplicate mapping keys."""

    what = "this file"

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases are not allowed in {self.what}", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads(text: str, what: str = "this file") -> Any:
    """Parse ``text`` strictly (``what`` names the kind of file in error messages)."""
    loader = type("Loader", (StrictSafeLoader,), {"what": what})
    return yaml.load(text, Loader=loader)


def load_file(path: Path, what: str, max_bytes: int, error: type[Exception], unreadable_hint: str = "") -> Any:
    """Parse the YAML file ``path`` strictly; any problem raises ``error`` naming ``what`` and ``path``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror}){unreadable_hint}") from None
    if size > max_bytes:
        raise error(f"{what} {path}: {size} bytes is larger than the {max_bytes}-byte limit")
    try:
        return loads(path.read_text(encoding="utf-8"), f"the {what}")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{what} {path}: nesting too deep") from None
