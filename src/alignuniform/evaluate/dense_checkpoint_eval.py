"""Every dense number of a checkpoint on held-out scenes (of CIFAR-10 in the configs): what a
sweep adds to a trial's row (:func:`dense_row`) next to ``evaluate_checkpoint``'s
image-level numbers (``evaluate.checkpoint_eval``), and the study's AU-correlation table
over such rows (:func:`au_correlation_table`).

For each scene variant ("single", "multi"; ``data.scenes``): a dense linear probe (mIoU,
pixel accuracy) fitted on scenes built from the "train" images and scored on scenes built
from the "val" hold-out (images training never saw); dense alignment over the ground-truth
pairs of two views of each held-out scene and dense uniformity
(``heldout_dense_metrics``); and how well each pair scheme finds the ground-truth
correspondence with this encoder's features (precision/recall against
``geometric_pairs(mode="nearest")``). Feature maps are the backbone's conv map ("backbone",
what a downstream task would use, and what any encoder has) and, for a ``DenseEncoder``, the
dense head's normalised map ("dense").

The held-out views are the CIFAR-10 training recipe at the scene canvas size
(``dataclasses.replace(recipes.CIFAR10, size=canvas)``: crop scale 0.2-1, flip, colour jitter
and drop), seeded, so every encoder is measured on the same views.

Examples:
    >>> from alignuniform.evaluate.dense_checkpoint_eval import (
    ...     dense_row, evaluate_dense_checkpoint)
    >>> results = evaluate_dense_checkpoint("run/checkpoint.pt")  # doctest: +SKIP
    >>> results["multi"]["backbone"]["miou"]  # doctest: +SKIP
    >>> dense_row(results)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from alignuniform import dense, predictivity
from alignuniform.data.dense_views import DenseTwoViews
from alignuniform.data.recipes import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, RecipeSpec
from alignuniform.data.scenes import VARIANTS, build_scenes
from alignuniform.evaluate.dense_probe import (
    dense_linear_probe,
    extract_dense_features,
    heldout_dense_metrics,
)
from alignuniform.evaluate.features import Mapped, frozen, model_device
from alignuniform.models.dense_head import DenseEncoder

WHICH = ("backbone", "dense")


def pair_scheme_quality(
    model: nn.Module, views: DenseTwoViews, *, n_items: int = 256, threshold: float = 0.5,
    device: str | torch.device | None = None,
) -> dict[str, dict]:
    """Precision/recall of each pair scheme against the crops' ground truth.

    The first ``n_items`` items of ``views`` (one batch) through ``dense.pair_quality``;
    feature-based schemes match the backbone maps (DenseCL). Ground truth:
    ``geometric_pairs(mode="nearest")``.

    Returns:
        ``{scheme: {"precision", "recall", "pairs"}}`` for "geometric" (PixPro 0.7),
        "feature_argmax" and "mutual_nn" (similarity >= ``threshold``), plus ``"truth_pairs"``.
    """
    batch = next(iter(torch.utils.data.DataLoader(views, batch_size=min(n_items, len(views)))))
    dev = model_device(model, device)
    with frozen(model):
        forward_dense = cast(DenseEncoder, model).forward_dense
        g1 = forward_dense(batch["view1"].to(dev).float())["backbone"].cpu()
        g2 = forward_dense(batch["view2"].to(dev).float())["backbone"].cpu()
    return dense.pair_quality(g1, g2, boxes1=batch["box1"], boxes2=batch["box2"],
                              flips1=batch["flip1"], flips2=batch["flip2"],
                              image_size=batch["size"], thresholds={"mutual_nn": threshold})


def evaluate_dense_checkpoint(
    path: str | Path,
    *,
    root: str | None = None,
    variants: Sequence[str] = ("single", "multi"),
    which: Sequence[str] = WHICH,
    n_train: int = 1000,
    n_test: int = 500,
    canvas: int = 64,
    probe_epochs: int = 20,
    alpha: float = 2.0,
    t: float = 2.0,
    n_locations: int | None = 20_000,
    n_pair_items: int = 256,
    random_init: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict:
    """Dense probe and held-out dense metrics of a training checkpoint on CIFAR-10 scenes.

    Args:
        path: A ``checkpoint.pt`` written by training (any image encoder; "dense" maps need
            a ``DenseEncoder``).
        root: The data (e.g. the CIFAR-10 zip); default the checkpoint's ``data.root``.
            Scenes are built from the run's data set with its options and train/val split
            (``kwargs``, ``val_fraction``, ``split_seed``), so held-out scenes hold no image
            training saw.
        variants: Scene variants (``data.scenes.VARIANTS``).
        which: Feature maps: "backbone" and/or "dense".
        n_train, n_test: Scenes to fit the probe on (from "train", seed ``seed``) and to
            score it and the metrics on (from "val", seed ``seed + 1``).
        canvas: Scene side in pixels.
        probe_epochs: Epochs of the dense probe.
        alpha, t: Dense alignment exponent and uniformity scale.
        n_locations: Locations sampled for dense uniformity (``None``: all).
        n_pair_items: Held-out items scored for the pair schemes' precision/recall.
        random_init: The checkpoint's architecture as training starts it
            (``checkpoint.load_encoder``'s seeded build) instead of its trained weights.
        seed: Seed of the scenes, the views, the probe and the sampled locations.
        device: Where to run (``devices.default_device``: CUDA when available).

    Returns:
        ``{variant: {map: {"miou", "pixel_accuracy", "dense_alignment",
        "dense_uniformity", "dense_uniformity_cross_image", "n_pairs"}, "pair_schemes":
        {...}}, "settings": {...}, "seconds": float}``.

    Raises:
        ValueError: An unknown variant or map, or "dense" maps of an encoder without a
            dense head.
    """
    from alignuniform.checkpoint import load_encoder
    from alignuniform.data import run_dataset_kwargs
    from alignuniform.devices import default_device

    if not variants or set(variants) - set(VARIANTS):
        raise ValueError(f"variants must be among {sorted(VARIANTS)}, got {list(variants)}")
    if not which or set(which) - set(WHICH):
        raise ValueError(f"which must be among {WHICH}, got {list(which)}")
    tic = time.perf_counter()
    dev = default_device(device)
    model, config = load_encoder(path, device=dev, random_init=random_init, seed=seed)
    has_head = hasattr(model, "forward_dense")
    if "dense" in which and not has_head:
        raise ValueError(f"{path}: a {type(model).__name__} has no dense head; use "
                         "which=('backbone',) or train model.name: dense")
    root = root or config.data.root
    # the pool of the run's own data set and train/val split: held-out scenes hold no image
    # that training saw
    pool = {"dataset": config.data.name,
            **run_dataset_kwargs(dataclasses.asdict(config.data))}
    to_input = RecipeSpec(size=canvas, train=False, mean=CIFAR10_MEAN,
                          std=CIFAR10_STD).per_sample()
    view_recipe = dataclasses.replace(CIFAR10, size=canvas)
    results: dict = {}
    for variant in variants:
        common = {"variant": variant, "canvas": canvas, **pool}
        train = build_scenes(root, "train", n_scenes=n_train, seed=seed, **common).cache()
        test = build_scenes(root, "val", n_scenes=n_test, seed=seed + 1, **common).cache()
        views = DenseTwoViews(test, view_recipe)
        out: dict = {}
        for name in which:
            ftr, ytr = extract_dense_features(model, Mapped(train, to_input), which=name,
                                              device=dev)
            fte, yte = extract_dense_features(model, Mapped(test, to_input), which=name,
                                              device=dev)
            probe = dense_linear_probe(ftr, ytr, fte, yte, num_classes=test.num_classes + 1,
                                       epochs=probe_epochs, seed=seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # the views' random crops: the same for every encoder
                held = heldout_dense_metrics(model, views, which=name, t=t, alpha=alpha,
                                             n_locations=n_locations, seed=seed, device=dev)
            out[name] = {"miou": probe.miou, "pixel_accuracy": probe.pixel_accuracy,
                         "dense_alignment": held.alignment,
                         "dense_uniformity": held.uniformity,
                         "dense_uniformity_cross_image": held.uniformity_cross_image,
                         "n_pairs": held.n_pairs}
        if has_head:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out["pair_schemes"] = pair_scheme_quality(model, views, n_items=n_pair_items,
                                                          device=dev)
        results[variant] = out
    results["settings"] = {
        "dataset": pool["dataset"], "root": None if root is None else str(root),
        "n_train": n_train, "n_test": n_test, "canvas": canvas,
        "probe_epochs": probe_epochs, "alpha": alpha, "t": t, "n_locations": n_locations,
        "n_pair_items": n_pair_items, "random_init": random_init, "seed": seed,
        "views": "recipes.CIFAR10 at the canvas size", "which": list(which),
        "ground_truth": "geometric_pairs(mode='nearest')",
    }
    results["seconds"] = time.perf_counter() - tic
    return results


def dense_row(results: dict) -> dict:
    """``evaluate_dense_checkpoint``'s numbers as flat table columns
    ``dense.<variant>.<map>.<number>`` and ``dense.<variant>.pairs.<scheme>.<number>``
    (NaN and infinity as ``None``: tables are strict JSON)."""
    row: dict = {}
    for variant in VARIANTS:
        for name, numbers in (results.get(variant) or {}).items():
            prefix = f"dense.{variant}.{'pairs' if name == 'pair_schemes' else name}"
            items = ({f"{s}.{k}": v for s, d in numbers.items() for k, v in d.items()}
                     if name == "pair_schemes" else numbers)
            for key, value in items.items():
                if isinstance(value, float) and not math.isfinite(value):
                    value = None
                row[f"{prefix}.{key}"] = value
    return row


#: The metrics each row of the study's table uses: global ones from the image-level
#: evaluation (``evaluate_checkpoint``'s output embedding), dense ones from
#: ``evaluate_dense_checkpoint`` on the same scene variant as the performance.
METRIC_COLUMNS = {
    "global": ("embedding.alignment", "embedding.uniformity"),
    "dense (backbone)": ("dense.{variant}.backbone.dense_alignment",
                         "dense.{variant}.backbone.dense_uniformity"),
    "dense (head)": ("dense.{variant}.dense.dense_alignment",
                     "dense.{variant}.dense.dense_uniformity"),
}
PERFORMANCE_COLUMNS = {
    "linear acc": "penultimate.linear_acc",
    "mIoU": "dense.{variant}.backbone.miou",
}


def au_correlation_table(
    rows: Sequence[dict], *, variants: Sequence[str] = ("single", "multi"),
    method: str = "pearson", n_boot: int = 1000, n_perm: int = 999, seed: int = 0,
) -> list[dict]:
    """The AU-correlation (``predictivity.au_correlation``) of a set of encoders for {global,
    dense metrics} x {linear accuracy, mIoU} x scene variants, with its permutation null
    (``predictivity.au_correlation_null``: ``p_value``, ``null_q95``, ``null_mean``), since
    its no-information value is not 0 (about -0.2 for 18-36 encoders).

    Args:
        rows: One flat row per encoder (a sweep's table rows: ``evaluate_checkpoint``'s
            columns and :func:`dense_row`'s); rows missing a column a cell needs (failed
            trials) are left out of that cell, and ``n_encoders`` says how many were used.
        variants: Scene variants.
        method, n_boot, seed: See ``predictivity.au_correlation``.
        n_perm: Permutations of the null (0: none, and no null entries).

    Returns:
        One dict per cell: ``metrics``, ``performance``, ``variant`` and
        ``AUCorrelation.to_dict()``'s entries, or ``error`` when no value is defined (fewer
        than 5 encoders, constant performance).
    """
    table = []
    for variant in variants:
        for perf_name, perf_col in PERFORMANCE_COLUMNS.items():
            for metrics_name, (a_col, u_col) in METRIC_COLUMNS.items():
                cols = [c.format(variant=variant) for c in (a_col, u_col, perf_col)]
                used = [r for r in rows if all(isinstance(r.get(c), int | float) for c in cols)]
                cell: dict[str, object] = {"metrics": metrics_name, "performance": perf_name,
                                           "variant": variant}
                try:
                    columns = [np.asarray([r[c] for r in used], dtype=float) for c in cols]
                    found = predictivity.au_correlation(*columns, method=method,
                                                        n_boot=n_boot, seed=seed)
                    cell.update(found.to_dict())
                    if n_perm:
                        null = predictivity.au_correlation_null(*columns, method=method,
                                                                n_perm=n_perm, seed=seed)
                        cell.update(p_value=null["p_value"], null_q95=null["null_q95"],
                                    null_mean=null["null_mean"], n_perm=n_perm)
                except ValueError as err:
                    cell.update(error=str(err), n_encoders=len(used))
                table.append(cell)
    return table


def format_au_correlation_table(table: list[dict]) -> str:
    """:func:`au_correlation_table`'s cells as a fixed-width text table (what ``sweep
    analyze`` prints)."""
    head = (f"{'metrics':<17} {'performance':<12} {'scenes':<7} {'n':>3}  "
            f"{'AU-correlation [95%]':<24} {'Q2':>6} {'perm p':>7} {'null q95':>8}")
    lines = [head, "-" * len(head)]
    for c in table:
        p_value = null_q95 = ""
        if "error" in c:
            value, q2 = f"n/a ({c['error'][:40]})", ""
        else:
            value, q2 = f"{c['value']:+.2f} [{c['low']:+.2f},{c['high']:+.2f}]", f"{c['q2']:.2f}"
            if c.get("p_value") is not None:
                p_value, null_q95 = f"{c['p_value']:.3f}", f"{c['null_q95']:+.2f}"
        lines.append(f"{c['metrics']:<17} {c['performance']:<12} {c['variant']:<7} "
                     f"{c['n_encoders']:>3}  {value:<24} {q2:>6} {p_value:>7} {null_q95:>8}")
    return "\n".join(lines)
