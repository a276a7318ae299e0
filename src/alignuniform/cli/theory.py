"""``alignuniform theory``: check the papers' mathematical claims numerically.

Runs :func:`alignuniform.theory.run_suite` at the full size (or ``--quick``, the CI size,
well under a minute on one core), prints each check, and writes ``theory.json`` (every number,
the settings and a ``checks`` table; strict JSON) and one PNG per claim to ``--out``. Exits 1
when a check fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "theory",
        help="check the theory numerically (Theorem 1, the uniformity bound, Arora et al., ...)",
        description=(
            "Monte-Carlo and optimisation checks of Theorem 1's limit, the optimum of "
            "L_uniform, the antipodal counterexample, the batch estimators, the terms of "
            "the contrastive limit, and Arora et al.'s bounds on synthetic latent classes. "
            "Writes theory.json and PNG figures to --out; exits 1 when a check fails."
        ),
    )
    p.add_argument("--quick", action="store_true", help="small sizes (under a minute on CPU)")
    add_common_options(p, out_help="run directory", out_default=Path("runs/theory"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from alignuniform import io, theory
    from alignuniform.report import theory_figures

    out = io.check_writable_dir(args.out)
    with tqdm(total=len(theory.SECTIONS), desc="theory", unit="claim",
              disable=args.no_progress) as bar:

        def done(section: str) -> None:
            bar.set_postfix_str(section)
            bar.update()

        result = theory.run_suite("quick" if args.quick else "full", args.seed, on_section=done)
    figures = theory_figures.write_figures(result, out)
    data = result.to_json()
    data["figures"] = {k: p.name for k, p in figures.items()}
    io.write_json(out / "theory.json", data)

    checks = [(s, c) for s, cs in result.checks.items() for c in cs]
    for section, c in checks:
        print(f"[{'PASS' if c.passed else 'FAIL'}] {section}: {c.name} -- {c.detail}")
    failed = len(result.failed)
    print(f"{len(checks) - failed}/{len(checks)} checks passed; results in {out / 'theory.json'}")
    return 1 if failed else 0
