"""Command-line interface: ``alignuniform <command> ...``.

Each module in this package defines one subcommand through ``add_parser(subparsers)``,
which sets ``func`` on its parser; ``main`` discovers them, so a new command is a new file.
Modules import their heavy dependencies inside ``func`` to keep ``--help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        # users get the message, not a traceback wall; --debug shows the traceback
        if getattr(args, "debug", False) or "--debug" in sys.argv:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"alignuniform {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
