"""The fast probe against the paper's, on encoders a sweep trained.

Wang & Isola train a linear classifier on a frozen encoder with Adam for 100 epochs on
freshly augmented images; ``alignuniform.evaluate.linear_probe`` fits one by L-BFGS on
features extracted once. :func:`compare_probes` runs both on the same encoders and reports,
per encoder, each probe's accuracy and time, the speed-up and the accuracy gap.

For data sets whose evaluation recipe is not an image recipe (MNIST-1D) the paper's crop and
flip do not exist; the paper probe is then fed the training recipe's views (for MNIST-1D:
``mnist1d_view``), its closest analogue.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from alignuniform.io import read_json, read_jsonl, write_json


def pick_encoders(rows: list[dict], n: int, *, key: str = "embedding.linear_acc") -> list[dict]:
    """``n`` evaluated trials spread evenly over the range of ``key``, non-collapsed ones
    first (collapsed ones only where too few others)."""
    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(key), (int, float))]
    fine = sorted((r for r in ok if not r.get("collapsed")), key=lambda r: r[key])
    if len(fine) <= n:
        return fine + [r for r in ok if r.get("collapsed")][: n - len(fine)]
    ok = fine
    return [ok[int(i)] for i in np.linspace(0, len(ok) - 1, n).round().astype(int)]


def compare_probes(out_dir: str | Path, *, encoders: int = 5, epochs: int = 100,
                   layer: str = "penultimate", seed: int = 0, progress: bool = False) -> dict:
    """Run the fast and the paper probe on ``encoders`` trials of the sweep in ``out_dir``.

    Returns (and writes to ``out_dir/probe_comparison.json``):
        ``{"epochs", "layer", "encoders": [{"id", "name", "fast_acc", "paper_acc",
        "gap", "fast_seconds", "paper_seconds", "speedup"}], "median_speedup",
        "max_abs_gap"}``; ``fast_seconds`` includes the feature extraction.
    """
    import torch

    from alignuniform._registry import resolve
    from alignuniform.checkpoint import load_encoder
    from alignuniform.data import RECIPES, RecipeSpec, build_recipe, build_run_splits
    from alignuniform.devices import default_device
    from alignuniform.evaluate import evaluate_encoder, probe_augmentation
    from alignuniform.evaluate.features import random_subset

    out_dir = Path(out_dir)
    meta = read_json(out_dir / "sweep.json")
    ev = meta.get("evaluate") or {}
    chosen = pick_encoders(read_jsonl(out_dir / "results.jsonl"), encoders)
    if not chosen:
        raise ValueError(f"{out_dir} has no evaluated trial to probe")
    device = default_device()
    found = []
    for row in chosen:
        model, config = load_encoder(out_dir / "trials" / row["id"] / "checkpoint.pt",
                                     device=device)
        train_set, test_set, _ = build_run_splits(dataclasses.asdict(config.data))
        train_set = random_subset(train_set, ev.get("n_train"), ev.get("seed", 0))
        test_set = random_subset(test_set, ev.get("n_test"), ev.get("seed", 0) + 1)
        recipe = config.data.recipe
        eval_spec = resolve(RECIPES, f"{recipe}_eval", "recipe")
        augment = (probe_augmentation(eval_spec) if isinstance(eval_spec, RecipeSpec)
                   else build_recipe(recipe))
        res = evaluate_encoder(
            model, train_set, test_set, transform=build_recipe(f"{recipe}_eval"),
            recipe=None, protocol="both", paper_augment=augment, paper_epochs=epochs,
            layers=[layer], seed=seed, device=device, progress=progress)
        cmp = res["layers"][layer]["fast_vs_paper"]
        found.append({"id": row["id"], "name": row["name"],
                      "fast_acc": res["layers"][layer]["probe_fast"]["accuracy"],
                      "paper_acc": res["layers"][layer]["probe_paper"]["accuracy"],
                      "gap": cmp["accuracy_gap"], "fast_seconds": cmp["fast_seconds"],
                      "paper_seconds": cmp["paper_seconds"], "speedup": cmp["speedup"]})
    result = {"epochs": epochs, "layer": layer, "seed": seed, "device": str(device),
              "threads": torch.get_num_threads(), "encoders": found,
              "median_speedup": float(np.median([f["speedup"] for f in found])),
              "max_abs_gap": float(max(abs(f["gap"]) for f in found))}
    write_json(out_dir / "probe_comparison.json", result)
    return result
