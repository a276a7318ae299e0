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
import re
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


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``KEY=VALUE`` overrides may also follow options.

    argparse fills a ``nargs="*"`` positional from one run of arguments only, so in
    ``train epochs=1 --out DIR loss.t=3`` the last override would be "unrecognized";
    subparsers rule out ``parse_intermixed_args``. Leftovers shaped like overrides join the
    command's ``overrides`` in order; any other leftover is the usual error.
    """
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list):
        args.overrides += [a for a in extra if _OVERRIDE.match(a)]
        extra = [a for a in extra if not _OVERRIDE.match(a)]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run ``alignuniform`` with ``argv`` (default: the process's arguments).

    Returns:
        The exit status: the command's (0 on success), 2 for an input error, printed as
        ``alignuniform COMMAND: error: MESSAGE`` (``--debug`` raises it instead).
    """
    parser = build_parser()
    args = _parse(parser, argv)
    try:
        return int(args.func(args) or 0)
    except INPUT_ERRORS as err:
        if args.debug:
            raise
        print(f"alignuniform {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
