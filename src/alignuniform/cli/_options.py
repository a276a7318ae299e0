"""Options shared by the subcommands that run long work."""

from __future__ import annotations

import argparse


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--no-progress`` (hide tqdm bars) and ``--debug`` (tracebacks instead of one line)."""
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
