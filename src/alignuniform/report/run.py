"""The report of one training run directory (``alignuniform report RUN_DIR``).

A run directory as ``alignuniform train`` writes it holds ``checkpoint.pt``, ``config.yaml``
and ``epochs.jsonl``; ``alignuniform eval`` adds ``eval/eval.json`` (and
``eval_random/eval.json`` for the random-init baseline). Missing evaluations are computed
with ``alignuniform.evaluate.evaluate_checkpoint``. For 2-d encoders the S^1 figure is drawn
from the held-out split rebuilt from the run's config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from alignuniform.io import read_jsonl


def positive_pair_distances(model: nn.Module, dataset: Dataset,
                            recipe: Callable[[torch.Tensor], torch.Tensor], *, seed: int = 0,
                            batch_size: int = 256) -> np.ndarray:
    """``||f(x) - f(y)||`` of two seeded random views of each item (the S^1 histogram).

    The views are drawn in the same order from the same seeded generator as
    ``evaluate.heldout_alignments``, so the mean of the squared distances is its alignment.
    """
    from alignuniform.data import TwoViews
    from alignuniform.evaluate import extract_features

    pairs = TwoViews(dataset, recipe)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        items = [pairs[i] for i in range(len(pairs))]
    labels = torch.tensor([item[2] for item in items])
    embeddings = [
        extract_features(model, torch.utils.data.TensorDataset(
            torch.stack([item[v] for item in items]), labels),  # type: ignore[misc]
            batch_size=batch_size, progress=False).embeddings
        for v in (0, 1)
    ]
    return (embeddings[0] - embeddings[1]).norm(dim=1).numpy()


def s1_inputs(model: nn.Module, test_set: Dataset, recipe: Callable[[torch.Tensor], torch.Tensor],
              *, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
              seed: int = 0) -> dict:
    """What the S^1 figure needs of one encoder: test embeddings, labels, pair distances."""
    from alignuniform.evaluate import extract_features
    from alignuniform.evaluate.features import Mapped

    feats = extract_features(model, Mapped(test_set, transform), progress=False)
    return {"points": feats.embeddings.numpy(), "labels": feats.labels.numpy(),
            "pos_dist": positive_pair_distances(model, test_set, recipe, seed=seed)}


def report_for_run(run_dir: str | Path, out_dir: str | Path | None = None, *, seed: int = 0,
                   progress: bool = True) -> dict[str, Path]:
    """Write the report of a training run (see the module docstring).

    Args:
        run_dir: A directory written by ``alignuniform train``.
        out_dir: Where the page goes (default ``run_dir/report``).
        seed: Seed of evaluations computed here and of the S^1 positive pairs.
        progress: Show progress bars.

    Returns:
        The paths ``build_report`` wrote, plus ``"results"`` (``results.json``).

    Raises:
        FileNotFoundError: If ``run_dir`` holds no ``checkpoint.pt``.
        ValueError: If an ``eval.json`` or a line of ``epochs.jsonl`` (other than a partial
            last one, which is skipped) is not valid JSON; the message names the file.
    """
    from alignuniform.checkpoint import load_encoder
    from alignuniform.data import RECIPES, build_recipe, build_run_splits
    from alignuniform.evaluate import evaluate_checkpoint, load_results, save_results
    from alignuniform.report.build import build_report

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run_dir} holds no checkpoint.pt; pass a directory written "
                                "by 'alignuniform train'")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    model, typed = load_encoder(ckpt, device="cpu")
    config = typed.to_dict()
    data_cfg = dict(config.get("data") or {})
    name = f"{config.get('model', {}).get('name', 'encoder')} ({run_dir.name})"

    evaluations = {}
    for key, random_init in (("eval", False), ("eval_random", True)):
        path = run_dir / key / "eval.json"
        if path.is_file():
            evaluations[key] = load_results(path)
        elif not random_init:
            if progress:
                print(f"no {path}: evaluating the checkpoint", flush=True)
            evaluations[key] = evaluate_checkpoint(ckpt, seed=seed, progress=progress)
            save_results(evaluations[key], out_dir / "eval.json")

    encoders = []
    if "eval_random" in evaluations:
        encoders.append({"name": "random init", "eval": evaluations["eval_random"]})
    epochs_log = run_dir / "epochs.jsonl"  # absent when training stopped before one epoch
    encoders.append({"name": name, "eval": evaluations["eval"],
                     "epochs": read_jsonl(epochs_log) if epochs_log.is_file() else []})

    recipe_name = data_cfg.get("recipe")
    if getattr(model, "feat_dim", None) == 2 and recipe_name in RECIPES:
        test_set = build_run_splits(data_cfg)[1]
        eval_name = f"{recipe_name}_eval"
        transform = build_recipe(eval_name) if eval_name in RECIPES else None
        # the trained encoder only: the random-init numbers come from a re-initialisation
        # inside 'alignuniform eval' whose weights are not stored
        encoders[-1].update(s1_inputs(model, test_set, build_recipe(recipe_name),
                                      transform=transform, seed=seed))

    epochs_done = encoders[-1]["epochs"][-1]["epoch"] if encoders[-1]["epochs"] else "?"  # type: ignore[index]
    intro = (f"Report of the training run {run_dir} ({epochs_done} epochs of "
             f"{config.get('model', {}).get('name')} with {config.get('model', {}).get('feat_dim')}"
             f"-d output on {data_cfg.get('name')}).")
    loss = config.get("loss") or {}
    settings = [f"Loss: {', '.join(f'{k} = {v}' for k, v in loss.items())}.",
                f"Data: {', '.join(f'{k} = {v}' for k, v in data_cfg.items())}."]
    written = build_report(out_dir, encoders, title=f"alignuniform report: {run_dir.name}",
                           intro=intro, settings=settings,
                           reproduce=[f"alignuniform report {run_dir}"])
    results = {"run_dir": str(run_dir), "config": config,
               "encoders": {enc["name"]: enc["eval"] for enc in encoders}}
    written["results"] = save_results(results, out_dir / "results.json")
    return written
