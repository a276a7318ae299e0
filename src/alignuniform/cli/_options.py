"""Options every subcommand takes, declared once so they mean the same thing everywhere.

Every subcommand (leaf of ``alignuniform COMMAND [SUBCOMMAND]``) takes ``--out DIR``,
``--seed N``, ``--no-progress`` and ``--debug``; ``tests/test_cli.py`` checks it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--no-progress`` (hide tqdm bars) and ``--debug`` (tracebacks instead of one line)."""
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an input error instead of a one-line message")


def add_common_options(
    p: argparse.ArgumentParser,
    *,
    out_help: str,
    out_default: Path | None = None,
    out_required: bool = False,
    seed_help: str = "seed of everything random",
    seed_default: int | None = 0,
) -> None:
    """``--out DIR`` (a ``Path``), ``--seed N`` (an int), and :func:`add_run_options`.

    Args:
        p: The subcommand's parser.
        out_help: What goes to ``--out``; its default is appended when there is one.
        out_default: Default output folder (``None``: the command derives one, or
            ``out_required``).
        out_required: ``--out`` must be given.
        seed_help: What the seed seeds; its default is appended when there is one.
        seed_default: Default seed (``None``: the command falls back on, say, its config).
    """
    suffix = f" (default: {out_default})" if out_default is not None else ""
    p.add_argument("--out", type=Path, metavar="DIR", default=out_default,
                   required=out_required, help=out_help + suffix)
    suffix = f" (default: {seed_default})" if seed_default is not None else ""
    p.add_argument("--seed", type=int, metavar="N", default=seed_default,
                   help=seed_help + suffix)
    add_run_options(p)
