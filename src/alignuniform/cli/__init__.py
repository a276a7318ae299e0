"""Command-line interface: ``alignuniform <command> ...``.

Each module in this package defines one subcommand through ``add_parser(subparsers)``,
which sets ``func`` on its parser; ``main`` discovers them, so a new command is a new file.
Modules import their heavy dependencies (torch) inside ``func``, so ``--help`` is fast;
every subcommand takes the options of ``_options.add_common_options``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from alignuniform.io import RunLockedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignuniform",
        description="Learn and measure representations on the unit hypersphere.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").add_parser(sub)
    return parser


#: What ``main`` reports as one line (exit status 2): wrong input, and missing, locked or
#: unwritable files. Anything else (TypeError, KeyError...) is a bug and keeps its traceback.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
    RunLockedError,
)


def main(argv: list[str] | None = None) -> int:
    """Run ``alignuniform`` with ``argv`` (default: the process's arguments).

    Returns:
        The exit status: the command's (0 on success), 2 for an input error, printed as
        ``alignuniform COMMAND: error: MESSAGE`` (``--debug`` raises it instead).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except INPUT_ERRORS as err:
        if args.debug:
            raise
        print(f"alignuniform {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
