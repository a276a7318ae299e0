"""``alignuniform sweep``: train and evaluate encoders over the loss space, then analyse.

    alignuniform sweep SWEEP.yaml --out DIR [--workers N] [--backend local|ray] [--seed S]
    alignuniform sweep analyze DIR
    alignuniform sweep probes DIR [--encoders 5] [--epochs 100]
    alignuniform sweep study studies/          (make studies)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options

MAX_EXIT = 100

#: Sweeps with more trials than this need ``--yes``: a grid typo (one more axis of 10
#: values) should not start days of training and thousands of trial folders.
CONFIRM_ABOVE = 1000


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train and evaluate many encoders over the loss space, then analyse them",
        description=(
            "Run a sweep file (a base training config, fixed overrides, a grid and/or random "
            "search space; see sweeps/) into --out: one run folder per trial under "
            "DIR/trials/<id>, results.csv and results.jsonl (one row per trial), sweep.json, "
            "then the analysis (analysis.json, report.html). Rerunning the same command "
            "resumes. 'alignuniform sweep analyze DIR' reruns the analysis only; "
            "'alignuniform sweep probes DIR' compares the fast probe with the paper's on "
            "a few of the sweep's encoders (probe_comparison.json); 'alignuniform sweep "
            "study studies/' recomputes each study's analysis.json from its results.csv "
            "and the Kendall heat maps across studies. Exit "
            "status: the number of failed trials (capped at 100); 2 with an error message "
            "for bad input."
        ),
    )
    p.add_argument("sweep", metavar="SWEEP.yaml|analyze|probes|study",
                   help="the sweep file, or 'analyze' or 'probes' followed by a sweep folder, "
                        "or 'study' followed by a study folder (or a folder of them)")
    p.add_argument("dir", nargs="?", type=Path, metavar="DIR",
                   help="with 'analyze' or 'probes': the sweep folder; with 'study': a study "
                        "folder (results.csv) or a folder of them (studies/)")
    add_common_options(p, out_help="sweep folder (required to run a sweep)",
                       seed_help="overrides the sweep file's seed", seed_default=None)
    p.add_argument("--workers", type=int,
                   help="trials at a time (local default: cores / 2; each worker gets "
                        "cores / workers torch threads)")
    p.add_argument("--threads", type=int,
                   help="torch threads per local worker (default: cores / workers); 1 is "
                        "faster on a machine busy with other work")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local worker pool (default) or Ray Tune "
                        "(pip install 'alignuniform[ray]')")
    p.add_argument("--address", help="Ray cluster address ('auto' joins a running cluster)")
    p.add_argument("--retry-failed", action="store_true",
                   help="rerun trials that failed in an earlier run of this sweep")
    p.add_argument("--bootstrap", type=int,
                   help="bootstrap resamples of the analysis (default: the sweep file's)")
    p.add_argument("--no-analysis", action="store_true",
                   help="skip the analysis and report at the end of the sweep")
    p.add_argument("--yes", action="store_true",
                   help=f"run a sweep of more than {CONFIRM_ABOVE:,} trials (refused without it)")
    p.add_argument("--encoders", type=int, default=5,
                   help="with 'probes': how many encoders (spread over accuracy)")
    p.add_argument("--epochs", type=int, default=100,
                   help="with 'probes': epochs of the paper's probe (100 in the paper)")
    p.set_defaults(func=run)


def _analyze(out: Path, bootstrap: int | None) -> dict:
    from alignuniform.report.sweep_page import build_sweep_report
    from alignuniform.sweep.analysis import analyze_sweep, format_table

    analysis = analyze_sweep(out, bootstrap=bootstrap)
    print(f"{analysis['n_ok']} of {analysis['n_planned']} trials evaluated "
          f"({analysis['n_failed']} failed, {analysis['n_collapsed']} collapsed)")
    print(format_table(analysis))
    if "dense_au_correlation" in analysis:
        from alignuniform.evaluate.dense_checkpoint_eval import format_au_correlation_table

        for subset, table in analysis["dense_au_correlation"].items():
            print(f"\nAU-correlation, {subset} trials:")
            print(format_au_correlation_table(table))
    if analysis["n_ok"]:
        pages = build_sweep_report(out)
        print(f"report: {pages['html']}")
    return analysis


def _study(root: Path, bootstrap: int | None) -> None:
    from alignuniform.report.predictivity_figures import kendall_heatmap
    from alignuniform.sweep.study import (
        analyze_study,
        format_study,
        study_folders,
        with_fit_rows,
    )

    results = {}
    for folder in study_folders(root):
        result = analyze_study(folder, n_boot=1000 if bootstrap is None else bootstrap)
        results[result["study"]] = with_fit_rows(result["table"])
        for accuracy in result["table"]["accuracies"]:
            print(format_study(result, accuracy))
        print(f"  -> {folder / 'analysis.json'}")
    # one heat map per accuracy, over the studies that measured it
    for accuracy in dict.fromkeys(a for t in results.values() for a in t["accuracies"]):
        tables = {name: t for name, t in results.items() if accuracy in t["accuracies"]}
        path = kendall_heatmap(tables, root / f"kendall_{accuracy}.png", accuracy=accuracy)
        print(f"figure: {path}")


def _probes(args: argparse.Namespace) -> None:
    from alignuniform.sweep.probe_comparison import compare_probes

    if args.encoders < 1 or args.epochs < 1:
        raise ValueError("--encoders and --epochs must be >= 1")
    result = compare_probes(args.dir, encoders=args.encoders, epochs=args.epochs,
                            seed=args.seed or 0, progress=not args.no_progress)
    print(f"{'trial':<12} {'fast':>7} {'paper':>7} {'gap':>7} {'fast s':>8} {'paper s':>8} "
          f"{'speed-up':>8}")
    for e in result["encoders"]:
        print(f"{e['id']:<12} {e['fast_acc']:>7.1%} {e['paper_acc']:>7.1%} "
              f"{100 * e['gap']:>+6.1f}p {e['fast_seconds']:>8.1f} {e['paper_seconds']:>8.1f} "
              f"{e['speedup']:>7.1f}x")
    print(f"median speed-up {result['median_speedup']:.1f}x, largest |gap| "
          f"{100 * result['max_abs_gap']:.1f} points ({result['layer']}, paper probe "
          f"{result['epochs']} epochs); {args.dir / 'probe_comparison.json'}")


def run(args: argparse.Namespace) -> int:
    if args.bootstrap is not None and args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.sweep in ("analyze", "probes", "study"):
        if args.dir is None:
            raise ValueError(f"usage: alignuniform sweep {args.sweep} DIR")
        if args.sweep == "analyze":
            _analyze(args.dir, args.bootstrap)
        elif args.sweep == "study":
            _study(args.dir, args.bootstrap)
        else:
            _probes(args)
        return 0
    if args.dir is not None:
        raise ValueError(f"unexpected argument {args.dir} (the folder goes in --out DIR)")
    if args.out is None:
        raise ValueError("--out DIR is required to run a sweep")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")

    from alignuniform.io import RunLockedError
    from alignuniform.sweep import load_sweep, run_sweep

    spec = load_sweep(args.sweep, seed=args.seed)
    if len(spec.trial_list) > CONFIRM_ABOVE and not args.yes:
        raise ValueError(
            f"{args.sweep} makes {len(spec.trial_list):,} trials (one trained encoder each, "
            f"varying {', '.join(spec.varying) or 'nothing'}); more than {CONFIRM_ABOVE:,} is "
            "refused unless you confirm with --yes (or shrink the grid / random 'n')"
        )
    print(f"{len(spec.trial_list)} trials from {args.sweep} (seed {spec.seed}) -> {args.out}")
    try:
        outcome = run_sweep(spec, args.out, workers=args.workers, backend=args.backend,
                            address=args.address, threads=args.threads,
                            retry_failed=args.retry_failed, progress=not args.no_progress)
    except RunLockedError as err:
        raise ValueError(str(err)) from err
    print(f"{outcome.ran} trials run, {outcome.skipped} already finished; "
          f"{outcome.ok} ok ({outcome.collapsed} collapsed), {outcome.failed} failed; "
          f"{outcome.wall_s:.0f} s")
    print(f"table: {args.out / 'results.csv'}")
    if not args.no_analysis:
        _analyze(args.out, args.bootstrap)
    if outcome.failed:
        print(f"{outcome.failed} of {outcome.total} trials failed (see error in "
              "results.csv and trials/<id>/error.txt); exit status = that number")
    return min(outcome.failed, MAX_EXIT)
