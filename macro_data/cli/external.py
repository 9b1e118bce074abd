"""``macro-data fetch | pin | register | provenance | verify``: verified external reference data.

Every command reads the registry (``--registry`` or ``$MACRO_DATA_REGISTRY``, default
``./datasets/external.yaml`` where it exists, else the one shipped with the package) and validates
it before any network I/O; the cache and provenance live under ``--root`` (``$MACRO_DATA_ROOT``,
default ``./datasets/build``) in ``external/``. Exit code 0 on success, 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The external-data modules are imported by the handlers that use them: every other command
# (``macro-data build`` above all) starts without them (about 1 s of imports).


def _common(p: argparse.ArgumentParser, network: bool = True) -> None:
    p.add_argument(
        "--registry",
        metavar="PATH",
        help="registry file (default: $MACRO_DATA_REGISTRY, else "
        "./datasets/external.yaml if present, else the shipped one)",
    )
    p.add_argument(
        "--root", metavar="DIR", help="data root holding external/ (default: $MACRO_DATA_ROOT or ./datasets/build)"
    )
    if network:
        p.add_argument(
            "--offline",
            action="store_true",
            default=None,
            help="serve verified cache hits only (also: MACRO_DATA_OFFLINE=1)",
        )
        p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="seconds (default 10)")
        p.add_argument(
            "--read-timeout",
            type=float,
            default=60.0,
            metavar="S",
            help="seconds without data before a retry (default 60)",
        )
        p.add_argument("--attempts", type=int, default=4, metavar="N", help="tries per URL (default 4)")
        p.add_argument(
            "--deadline",
            type=float,
            default=900.0,
            metavar="S",
            help="total seconds per entry, all mirrors included (default 900)",
        )


def _policy(args):
    from macro_data.external.http import HttpPolicy

    return HttpPolicy.from_env(
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        attempts_per_url=args.attempts,
        deadline=args.deadline,
    )


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``macro-data`` parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The parser's sub-command set.
    """
    p = subparsers.add_parser(
        "fetch",
        help="download and verify external datasets (all by default)",
        description="Fetch registry entries into the content-addressed cache, verifying size, sha256, archive "
        "members and CSV header; append provenance. Unpinned entries are refused.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to fetch (default: all)")
    p.add_argument("--skip-unpinned", action="store_true", help="leave out unpinned entries instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object per entry")
    _common(p)
    p.set_defaults(handler=_cmd_fetch)

    p = subparsers.add_parser(
        "pin",
        help="download an unpinned entry, print its sha256/size for review and write them",
        description="Download NAME from every URL it lists, refuse if mirrors disagree, print sha256, size and "
        "header, and write them into the registry (removing `pinned: false`). A pinned entry whose "
        "mirrors now serve other bytes is refused unless --force.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dry-run", action="store_true", help="print the hash and header, change nothing")
    p.add_argument("--force", action="store_true", help="re-pin an entry whose upstream bytes changed")
    _common(p)
    p.set_defaults(handler=_cmd_pin)

    p = subparsers.add_parser(
        "register",
        help="copy a local file into the cache (new manual entry, or side-load a pinned one)",
        description="For a new NAME: hash PATH, copy it into the cache and append a `kind: manual` entry with its "
        "sha256, size and header to the registry. For an existing pinned NAME: side-load PATH after "
        "checking it against the pinned sha256 and size (e.g. for offline machines).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("path", metavar="PATH", type=Path)
    p.add_argument("--description")
    p.add_argument("--license")
    p.add_argument("--source")
    p.add_argument("--citation")
    p.add_argument("--format", dest="fmt", choices=["csv", "csv.gz", "csv.bz2"], help="default: from the file suffix")
    p.add_argument("--header-rows", type=int, default=0, help="non-data rows after the column names (default 0)")
    p.add_argument("--filename", help="name inside the cache (default: the file's name)")
    _common(p, network=False)
    p.set_defaults(handler=_cmd_register)

    p = subparsers.add_parser(
        "provenance",
        help="export the provenance of datasets (for a paper's appendix)",
        description="Export the latest successful fetch/pin/register record of each dataset together with its "
        "registry entry (source, license, citation) as Markdown, JSON, or the raw JSON lines.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries (default: all)")
    p.add_argument("--format", dest="fmt", choices=["markdown", "json", "jsonl"], default="markdown")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    _common(p, network=False)
    p.set_defaults(handler=_cmd_provenance)

    p = subparsers.add_parser(
        "verify",
        help="list entries with their cache status and re-verify the whole cache",
        description="Re-hash every cached entry (and extracted archive members); corrupt files are quarantined "
        "and make the command fail. Missing and unpinned entries are listed; with --strict they fail "
        "too.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries (default: all)")
    p.add_argument("--strict", action="store_true", help="also fail on missing or unpinned entries")
    p.add_argument("--json", action="store_true")
    _common(p, network=False)
    p.set_defaults(handler=_cmd_verify)


def _cmd_fetch(args) -> int:
    from macro_data.external.errors import ExternalDataError
    from macro_data.external.fetch import combined_offline_error, fetch_many, offline_from_env
    from macro_data.external.registry import load_registry

    policy = _policy(args)
    registry = load_registry(args.registry, allow_http_hosts=policy.allow_http_hosts)
    offline = args.offline if args.offline is not None else offline_from_env()
    outcomes = fetch_many(
        registry, args.names, skip_unpinned=args.skip_unpinned, root=args.root, policy=policy, offline=offline
    )
    failed = 0
    for entry, r in outcomes:
        if isinstance(r, ExternalDataError):
            failed += 1
            if args.json:
                print(json.dumps({"name": entry.name, "ok": False, "error_type": type(r).__name__, "error": str(r)}))
            else:
                print(f"FAILED  {entry.name}: {type(r).__name__}", file=sys.stdout)
                print(f"{r}", file=sys.stderr)
            continue
        t = r.table
        shape = f"{t.rows} rows x {len(t.columns)} cols" if t is not None else f"{len(r.members)} members"
        if args.json:
            print(
                json.dumps(
                    {
                        "name": entry.name,
                        "ok": True,
                        "cache": r.cache,
                        "sha256": r.sha256,
                        "size": r.size,
                        "url": r.url,
                        "mirror_index": r.mirror_index,
                        "path": str(r.path),
                        "rows": t.rows if t else None,
                        "columns": t.columns if t else None,
                    }
                )
            )
        else:
            via = f" from mirror {r.mirror_index} {r.final_url}" if r.url else ""
            print(f"ok      {entry.name}: {r.cache}{via}; sha256 {r.sha256}, {r.size} bytes, {shape}; {r.path}")
    off = combined_offline_error(outcomes, args.root)
    if off is not None:
        print(str(off), file=sys.stderr)
    print(f"{len(outcomes) - failed} ok, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _cmd_pin(args) -> int:
    from macro_data.external import pinning

    pinning.pin(
        args.name,
        registry_path=args.registry,
        root=args.root,
        policy=_policy(args),
        dry_run=args.dry_run,
        force=args.force,
        offline=args.offline,
        out=print,
    )
    return 0


def _cmd_register(args) -> int:
    from macro_data.external import registering

    registering.register(
        args.name,
        args.path,
        registry_path=args.registry,
        root=args.root,
        description=args.description,
        license=args.license,
        source=args.source,
        citation=args.citation,
        fmt=args.fmt,
        header_rows=args.header_rows,
        filename=args.filename,
        out=print,
    )
    return 0


def _cmd_provenance(args) -> int:
    from macro_data.external import provenance
    from macro_data.external.cache import Cache
    from macro_data.external.registry import load_registry

    registry = load_registry(args.registry)
    records = provenance.read(Cache(args.root).provenance_path)
    text = provenance.export(registry, records, args.names, args.fmt)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_verify(args) -> int:
    from macro_data.external.fetch import verify_cache
    from macro_data.external.registry import load_registry

    registry = load_registry(args.registry)
    statuses, orphans = verify_cache(registry, root=args.root, names=args.names)
    bad = 0
    for st in statuses:
        fail = not st.ok or (args.strict and st.status in ("missing", "unpinned"))
        bad += fail
        if args.json:
            print(
                json.dumps(
                    {
                        "name": st.name,
                        "status": st.status,
                        "ok": not fail,
                        "path": str(st.path or ""),
                        "detail": st.detail,
                    }
                )
            )
        else:
            print(f"{'FAILED' if fail else 'ok':7} {st.name:28} {st.status:16} {st.detail}")
    for d in orphans:
        print(f"note    orphan object folder (no registry entry): {d}")
    print(f"{len(statuses) - bad} ok, {bad} failed", file=sys.stderr)
    return 1 if bad else 0
