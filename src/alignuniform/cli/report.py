"""``alignuniform report RUN_DIR``: the demo's report for any training run."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write report.html/report.md/results.json and figures for a training run",
        description=(
            "Build the demo's report for a run directory written by 'alignuniform train': the "
            "results table, the alignment-uniformity plane, the training curves and, for 2-d "
            "encoders, the S^1 figure. Uses RUN_DIR/eval/eval.json and "
            "RUN_DIR/eval_random/eval.json from 'alignuniform eval' when present and "
            "evaluates the checkpoint otherwise."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="training run directory")
    add_common_options(p, out_help="output folder (default: RUN_DIR/report)",
                       seed_help="seed of evaluations computed here and of the S^1 pairs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alignuniform.io import check_writable_dir
    from alignuniform.report.run import report_for_run

    check_writable_dir(args.out or args.run_dir / "report")  # before any evaluation
    written = report_for_run(args.run_dir, args.out, seed=args.seed,
                             progress=not args.no_progress)
    for role, path in written.items():
        print(f"{role:9s} {path}")
    return 0
