"""``macro-data``: the command-line front door for what is not a Dagster verb.

Each subcommand lives in its own module exposing ``register(subparsers)``; the handler it sets
returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands; each has register(subparsers).
COMMAND_MODULES = (
    "macro_data.cli.build",
    "macro_data.cli.catalog",
    "macro_data.cli.external",
    "macro_data.cli.validate",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``macro-data`` parser with the sub-commands of every command module that imports.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(prog="macro-data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``macro-data``; a :class:`~macro_data.errors.MacroDataError` is printed, not raised.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from macro_data.errors import MacroDataError

    try:
        return int(args.handler(args) or 0)
    except MacroDataError as exc:
        print(f"macro-data {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
