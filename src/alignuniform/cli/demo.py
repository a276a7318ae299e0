"""``alignuniform demo``: train and compare encoders on a bundled data set and write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train random-init / L_contrastive / L_align+L_uniform encoders and write a report",
        description=(
            "Train and compare a randomly initialised encoder, one trained with L_contrastive "
            "and one with L_align + L_uniform on MNIST-1D (generated locally, no download) or "
            "CIFAR-10, evaluate each (linear probe, 5-NN, held-out alignment, uniformity) and "
            "write report.html, report.md, results.json and the figures to --out."
        ),
    )
    p.add_argument("--data", choices=("mnist1d", "cifar10"), default="mnist1d",
                   help="data set (default: mnist1d)")
    p.add_argument("--root", help="CIFAR-10 location (default: ../shared/data/cifar10 zip)")
    p.add_argument("--n-train", type=int,
                   help="training items (mnist1d: 4000; cifar10: a 5000 subset)")
    p.add_argument("--n-test", type=int,
                   help="test items (mnist1d: 1000; cifar10: a 1000 subset of val)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the data set's)")
    p.add_argument("--feat-dim", type=int, default=2,
                   help="embedding dimension; 2 adds the S^1 figure (default: 2)")
    add_common_options(p, out_help="output folder", out_default=Path("runs/demo"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alignuniform.demo import run_demo
    from alignuniform.io import check_writable_dir

    check_writable_dir(args.out)  # before training, not after it
    for name in ("n_train", "n_test", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
    results = run_demo(args.out, data=args.data, root=args.root, seed=args.seed,
                       n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
                       feat_dim=args.feat_dim, progress=not args.no_progress)
    print(f"\n{'encoder':22s} {'linear':>7s} {'5-NN':>7s} {'align':>7s} {'uniform':>8s}")
    for name, rec in results["encoders"].items():
        emb = rec["evaluation"]["layers"]["embedding"]
        print(f"{name:22s} {emb['linear_acc']:7.1%} {emb['knn5_acc']:7.1%} "
              f"{emb['alignment']:7.3f} {emb['uniformity']:8.3f}")
    print(f"uniformity bound ({results['feat_dim']}-d): {results['uniformity_bound']:.3f}")
    print(f"demo took {results['wall_seconds']:.0f} s; report: {args.out / 'report.html'}")
    return 0
