"""``alignuniform eval``: linear probe, k-NN, alignment and uniformity of a checkpoint.

Prints a one-screen table and writes ``eval.json`` (every number and the settings that
produced it) to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: linear probe, k-NN, alignment, uniformity",
        description=(
            "Evaluate an encoder checkpoint the way Wang & Isola (2020) do, from the output "
            "embedding and the penultimate layer: linear-probe accuracy (fast L-BFGS on "
            "frozen features, or the paper's Adam protocol on augmented images), 5-NN and "
            "weighted k-NN accuracy, alignment on held-out positive pairs and exact "
            "uniformity with its bound. Fits on the 'train' split, scores on 'test' or, "
            "where the data set has none, on the held-out 'val' split training never saw."
        ),
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt written by 'alignuniform train'")
    p.add_argument("--data", help="data set name (default: the checkpoint's)")
    p.add_argument("--root", help="data location (default: the checkpoint's)")
    p.add_argument("--protocol", choices=("fast", "paper", "both"), default="fast",
                   help="linear probe: fast L-BFGS, the paper's Adam protocol, or both timed "
                        "side by side (default fast)")
    p.add_argument("--paper-epochs", type=int, default=100,
                   help="epochs of the paper protocol (paper: 100; lr drops at 60%% and 80%%)")
    p.add_argument("--layers", nargs="+", choices=("embedding", "penultimate"),
                   default=["embedding", "penultimate"], help="layers to evaluate")
    p.add_argument("--k", type=int, default=5, help="neighbours of the majority-vote k-NN")
    p.add_argument("--weighted-k", type=int, default=200, help="neighbours of the weighted k-NN")
    p.add_argument("--temperature", type=float, default=0.07,
                   help="temperature of the weighted k-NN")
    p.add_argument("--weight-decays", type=float, nargs="+",
                   help="L2 strengths the fast probe chooses from on a validation split "
                        "(default 1e-6 ... 1e-1, one per decade)")
    p.add_argument("--n-train", type=int,
                   help="use a seeded random subset of this many training items")
    p.add_argument("--n-test", type=int, help="use a seeded random subset of this many test items")
    p.add_argument("--random-init", action="store_true",
                   help="evaluate the checkpoint's architecture with seeded random weights")
    p.add_argument("--batch-size", type=int, default=256, help="encoder batch size")
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda when available)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    add_common_options(
        p, out_help="output folder for eval.json (default: CHECKPOINT's folder/eval, or "
                    "/eval_random with --random-init)",
        seed_help="seed of the subsets, the probe's validation split and the positive pairs")
    p.set_defaults(func=run)


def _pct(value: float | None) -> str:
    return "     -" if value is None else f"{100 * value:5.1f}%"


def _num(value: float | None, width: int = 7, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def _spectral_table(layers: dict) -> list[str]:
    """The spectral metrics of each layer, a second table (none for results without them)."""
    if not any("rankme" in r for r in layers.values()):
        return []
    lines = [f"{'layer':<12} {'RankMe':>7} {'effrank':>7} {'stable':>7} {'alpha':>6} "
             f"{'W2':>6} {'LiDAR':>7}"]
    for name, r in layers.items():
        lines.append(
            f"{name:<12} {_num(r.get('rankme'), 7, 1)} {_num(r.get('effective_rank'), 7, 1)} "
            f"{_num(r.get('stable_rank'), 7, 2)} {_num(r.get('alpha_req'), 6)} "
            f"{_num(r.get('gaussian_w2'), 6)} {_num(r.get('lidar'), 7, 1)}"
        )
    return lines


def format_table(results: dict) -> str:
    """The one-screen summary of an ``evaluate_checkpoint`` result."""
    ck, data, s = results["checkpoint"], results["data"], results["settings"]
    init = ", random init" if ck["random_init"] else ""
    lines = [
        f"{ck['path']} ({ck['model']}{init}) on {data['name']}: fit on train "
        f"({results['n_train']}), scored on {data['test_split']} ({results['n_test']})",
        f"{'layer':<12} {'dim':>5} {'linear':>7} {s['k']:>4}-NN {'wkNN':>6} {'mean':>6} "
        f"{'align':>7} {'uniform':>8} {'bound':>8}",
    ]
    for name, r in results["layers"].items():
        lines.append(
            f"{name:<12} {r['dim']:>5} {_pct(r['linear_acc']):>7} {_pct(r['knn5_acc']):>7} "
            f"{_pct(r['knn_weighted_acc']):>6} {_pct(r.get('mean_acc')):>6} {_num(r['alignment'])} "
            f"{_num(r['uniformity'], 8)} {_num(r['uniformity_bound'], 8)}"
        )
    lines += _spectral_table(results["layers"])
    for name, r in results["layers"].items():
        if "fast_vs_paper" in r:
            fp, fast, paper = r["fast_vs_paper"], r["probe_fast"], r["probe_paper"]
            lines.append(
                f"probe on {name}: fast {_pct(fast['accuracy']).strip()} in "
                f"{fp['fast_seconds']:.1f} s vs paper ({paper['epochs']} epochs) "
                f"{_pct(paper['accuracy']).strip()} in {fp['paper_seconds']:.1f} s: "
                f"{fp['speedup']:.1f}x faster, {100 * fp['accuracy_gap']:+.1f} points"
            )
    lines.append(
        f"linear = {'fast L-BFGS' if s['protocol'] != 'paper' else 'paper Adam'} probe; "
        f"wkNN = {s['weighted_k']}-NN weighted at T={s['temperature']}; "
        "mean = nearest class centroid (cosine); "
        f"alignment/uniformity (t={s['t']}) on normalised {data['test_split']} features"
    )
    if any("rankme" in r for r in results["layers"].values()):
        lines.append(
            f"RankMe, effective rank (effrank), stable rank, alpha-ReQ and LiDAR of the "
            f"{data['test_split']} features as the layer gives them, W2 uniformity of them "
            "normalised; LiDAR: each item's two alignment views one class"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from alignuniform.devices import default_device
    from alignuniform.evaluate import evaluate_checkpoint, save_results
    from alignuniform.io import check_writable_dir

    out = args.out or args.checkpoint.parent / ("eval_random" if args.random_init else "eval")
    check_writable_dir(out)  # before the work, not after it
    default_device(args.device)  # a missing GPU or a typo: one line, before the checkpoint
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    results = evaluate_checkpoint(
        args.checkpoint, data=args.data, root=args.root, random_init=args.random_init,
        n_train=args.n_train, n_test=args.n_test, seed=args.seed, device=args.device,
        protocol=args.protocol, paper_epochs=args.paper_epochs, layers=args.layers, k=args.k,
        weighted_k=args.weighted_k, temperature=args.temperature, batch_size=args.batch_size,
        num_workers=args.num_workers, progress=not args.no_progress,
        probe_kwargs={"weight_decays": args.weight_decays} if args.weight_decays else None,
    )
    results["command"] = {k: str(v) if isinstance(v, Path) else v
                          for k, v in vars(args).items() if k != "func"}
    path = save_results(results, out / "eval.json")
    print(format_table(results))
    print(f"wrote {path}")
    return 0
