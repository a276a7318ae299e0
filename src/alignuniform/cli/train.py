"""``alignuniform train``: train an encoder from a YAML config (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an encoder with any weighting of the contrastive/align/uniform losses",
        description=(
            "Train an encoder on the unit hypersphere from a YAML config plus key=value "
            "overrides (e.g. loss.tau=0.2 epochs=10). Writes config.yaml, checkpoint.pt "
            "(every epoch, atomically), log.jsonl (per step) and epochs.jsonl (per epoch) "
            "to --out. Under 'torchrun --nproc_per_node=K -m alignuniform train ...' it "
            "trains with DistributedDataParallel."
        ),
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. loss.w_uniform=0.5 data.batch_size=256")
    p.add_argument("--config", type=Path,
                   help="YAML config file, or the name of a shipped recipe (alignuniform configs)")
    add_common_options(p, out_help="run directory (locked while a run uses it: a second one is "
                       "refused)", out_required=True, seed_help="overrides the config's seed",
                       seed_default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--monitor", action="store_true",
                   help="after each epoch log held-out weighted k-NN accuracy, alignment and "
                        "uniformity to epochs.jsonl (alignuniform.evaluate.make_monitor)")
    p.set_defaults(func=run)


def _monitor(config):
    from alignuniform.data import build_batch_recipe, build_recipe, build_run_splits
    from alignuniform.evaluate import make_monitor

    data = config.data
    train_set, held_out, _ = build_run_splits(config.to_dict()["data"])
    # the batched executor makes the held-out pairs much cheaper when training used it
    build = build_batch_recipe if data.batched_augment else build_recipe
    recipe = build(data.recipe, data.augment)
    return make_monitor(
        train_set, held_out, recipe,
        transform=build_recipe(f"{data.recipe}_eval"), every=config.monitor_every,
        t=config.loss.t, seed=config.seed,
    )


def run(args: argparse.Namespace) -> int:
    from alignuniform.distributed import is_main_process
    from alignuniform.io import check_writable_dir
    from alignuniform.train import load_config, train

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_config(args.config, overrides)
    check_writable_dir(args.out)  # before the monitor loads its data (train checks again)
    if args.resume and not (args.out / "checkpoint.pt").exists() and is_main_process():
        print(f"no checkpoint in {args.out} to resume: starting a fresh run there")
    monitor = _monitor(config) if args.monitor else None
    out = train(config, args.out, resume=args.resume, monitor=monitor,
                progress=not args.no_progress)
    if is_main_process():
        print(f"run directory: {out}")
    return 0
