"""``macro-data validate PATH``: validate an existing dataset folder and print a readable summary.

PATH is the folder holding ``manifest.json`` (e.g. ``datasets/build/default/1.0.0``) or an
object-storage URL. Runs every check (integrity, consistency, reproducibility, model identities,
statistical sanity, realism against verified US data when it is in the external-data cache),
prints a table per world and every check that did not pass, and writes ``validation_report.json``
and ``validation_report.html`` next to the manifest unless ``--no-write``. Every check is computed
from scratch unless ``--reuse`` (see :mod:`macro_data.validation.reuse`).

Exit status: 0 if no error-level check failed (warnings allowed, unless ``--strict``), 1 if any
did (or with ``--strict``, if anything did not pass), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``macro-data`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The parser's sub-command set.
    """
    p = sub.add_parser(
        "validate",
        help="validate a dataset folder (the folder holding manifest.json)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", metavar="PATH", help="dataset folder holding manifest.json (or an s3:// URL)")
    p.add_argument(
        "--external-root",
        default=None,
        help="root of the verified external-data cache (<root>/external/objects); default: the dataset's "
        "own root if it has an external/ folder, else $MACRO_DATA_ROOT",
    )
    p.add_argument(
        "--no-write",
        action="store_true",
        help="do not write validation_report.json/.html nor the computed world checks' results (.checks/)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse world checks persisted for exactly the stored data, code and environment (as a build's "
        "report does) instead of recomputing them; default: every check from scratch",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the text summary")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings and skipped checks too")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the checks that passed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``macro-data validate``: validate the dataset, write the reports, print the summary.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code: 1 if a check failed (with ``--strict``, also on warnings or skipped checks), else 0.
    """
    from macro_data.validation import html
    from macro_data.validation.dataset import validate_dataset
    from macro_data.validation.report import build_report, summary_text, validate_report, write_report

    log = (lambda m: print(m, file=sys.stderr)) if not args.json else None
    v = validate_dataset(
        args.path, external_root=args.external_root, log=log, reuse=args.reuse, persist=not args.no_write
    )
    doc = build_report(v)
    validate_report(doc)
    written = None
    if not args.no_write:
        written = write_report(v.dataset_dir, doc, html.render(doc, v.dataset_dir, v.manifest, v.real))
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(summary_text(doc, verbose=args.verbose))
        if written:
            print(f"\nreport: {written[1]}\n        {written[0]}")
    if doc["summary"]["fail"]:
        return 1
    if args.strict and (doc["status"] != "pass" or doc["summary"]["skipped"]):
        return 1
    return 0
