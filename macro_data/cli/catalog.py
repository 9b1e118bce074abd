"""``macro-data list | gc | remove``: what a data root holds, its debris, and deliberate removal.

``list`` prints every dataset version with its worlds, sample counts, status (complete, partial,
empty), validation verdict and score, size on disk and creation time (``--json``: one JSON
document). ``gc`` lists abandoned staging areas, interrupted removals and replacements, stale lock
files and temporary files; it removes them only with ``--yes``. ``remove name@version`` deletes a
version (asking on a terminal; ``--yes`` to skip the question).
"""

from __future__ import annotations

import json
import sys

from macro_data import paths


def _root(args) -> str:
    return args.root or str(paths.data_root())


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def register(sub) -> None:
    """Add this module's sub-commands to the ``macro-data`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The parser's sub-command set.
    """
    p = sub.add_parser("list", help="every dataset version under a root, with status, validation and size")
    p.add_argument("--root", help="data root (default: $MACRO_DATA_ROOT or ./datasets/build)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser("gc", help="find (and with --yes remove) what interrupted builds left behind")
    p.add_argument("--root", help="data root (default: $MACRO_DATA_ROOT or ./datasets/build)")
    p.add_argument("--yes", action="store_true", help="remove what is found (default: only list it)")
    p.set_defaults(handler=_cmd_gc)

    p = sub.add_parser("remove", help="remove one dataset version (name@version)")
    p.add_argument("version", metavar="NAME@VERSION")
    p.add_argument("--root", help="data root (default: $MACRO_DATA_ROOT or ./datasets/build)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=_cmd_remove)


def _cmd_list(args) -> int:
    from macro_data import catalog  # imported here: other commands start without it (about 1 s)

    root = _root(args)
    versions = catalog.scan(root)
    if args.json:
        print(json.dumps({"root": root, "versions": [v.as_dict() for v in versions]}, indent=1))
        return 0
    if not versions:
        print(f"no datasets under {root}")
        return 0
    print(f"datasets under {root}")
    for v in versions:
        worlds = ", ".join(f"{w} {n:,}" for w, n in v.worlds.items())
        verdict = v.validation.get("headline") or v.validation.get("status")
        score = f", score {v.validation['score']}/100" if "score" in v.validation else ""
        extra = f"; missing worlds: {', '.join(v.missing_worlds)}" if v.missing_worlds else ""
        extra += "; a replacement is being built" if v.replacement_in_progress else ""
        print(
            f"  {v.name}@{v.version}  {v.status}  validation: {verdict}{score}  {_size(v.bytes)}  "
            f"created {v.created_at or '-'}\n      worlds: {worlds or '-'}{extra}"
        )
    return 0


def _cmd_gc(args) -> int:
    from macro_data import catalog  # imported here: other commands start without it (about 1 s)

    root = _root(args)
    found = catalog.debris(root)
    if not found:
        print(f"nothing to collect under {root}")
        return 0
    for d in found:
        print(f"  {d.kind:<11} {_size(d.bytes):>10}  {d.path}  ({d.reason})")
    if not args.yes:
        print(f"{len(found)} item(s), {_size(sum(d.bytes for d in found))}: dry run; pass --yes to remove them")
        return 0
    removed = catalog.collect(found)
    print(f"removed {len(removed)} of {len(found)} item(s), {_size(sum(d.bytes for d in removed))}")
    return 0 if len(removed) == len(found) else 1


def _cmd_remove(args) -> int:
    from macro_data import catalog  # imported here: other commands start without it (about 1 s)

    root = _root(args)
    name, sep, version = args.version.partition("@")
    if not sep or not name or not version:
        raise catalog.CatalogError(
            f"remove: give the version as NAME@VERSION (e.g. default@1.0.0); got {args.version!r}"
        )
    info = catalog.describe_version(root, name, version) if name and version else None
    if not args.yes:
        if not sys.stdin.isatty():
            raise catalog.CatalogError(f"remove {name}@{version}: not a terminal; pass --yes to remove without asking")
        size = _size(info.bytes) if info else "?"
        answer = input(f"remove {name}@{version} ({size}) under {root}? type the version to confirm: ")
        if answer.strip() != version:
            print("not removed")
            return 1
    path = catalog.remove_version(root, name, version)
    print(f"removed {name}@{version} ({path})")
    return 0
