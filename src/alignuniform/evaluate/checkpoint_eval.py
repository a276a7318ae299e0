"""Every number of the paper's evaluation for an encoder (:func:`evaluate_encoder`) or a
training checkpoint on its run's data (:func:`evaluate_checkpoint`, what ``alignuniform
eval`` and each sweep trial report): linear probe, k-NN, mean classifier, held-out
alignment and exact uniformity, and the label-free spectral metrics of the same held-out
features (:mod:`alignuniform.evaluate.spectral_numbers`), per layer, with the settings that
produced them.

The dense counterpart (dense probe and metrics on held-out scenes) is
``evaluate.dense_checkpoint_eval``; the cheap per-epoch numbers of a training run are
``evaluate.monitor``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from alignuniform import metrics
from alignuniform._registry import resolve
from alignuniform.data.recipes import RecipeSpec
from alignuniform.evaluate.features import (
    LAYERS,
    Features,
    Mapped,
    extract_features,
    heldout_alignments,
    heldout_alignments_and_lidar,
    model_device,
    random_subset,
)
from alignuniform.evaluate.knn import knn_accuracy
from alignuniform.evaluate.mean_classifier import mean_classifier_accuracy
from alignuniform.evaluate.probe import linear_probe, linear_probe_paper, probe_augmentation
from alignuniform.evaluate.spectral_numbers import spectral_numbers_of

if TYPE_CHECKING:
    from alignuniform.train.config import TrainConfig


def _layer_numbers(
    train: Features, test: Features, name: str, *, k: int, weighted_k: int,
    temperature: float, t: float, seed: int, device: torch.device, fast_probe: bool,
    probe_kwargs: dict,
) -> dict:
    """Probe, k-NN, mean classifier and uniformity of one layer; features are moved to
    ``device`` here."""
    tr_x, te_x = train.layer(name).to(device), test.layer(name).to(device)
    dim = int(tr_x.shape[1])
    out: dict = {"dim": dim}
    if fast_probe:
        out["probe_fast"] = linear_probe(tr_x, train.labels, te_x, test.labels, seed=seed,
                                         **probe_kwargs)
    out["knn5_acc"] = knn_accuracy(tr_x, train.labels, te_x, test.labels, k=k)
    out["knn_weighted_acc"] = knn_accuracy(tr_x, train.labels, te_x, test.labels,
                                           k=min(weighted_k, len(tr_x)), temperature=temperature)
    out["mean_acc"] = mean_classifier_accuracy(tr_x, train.labels, te_x, test.labels)
    out["uniformity"] = float(metrics.uniformity(te_x, t=t))
    out["uniformity_bound"] = metrics.uniformity_bound(dim, t=t)
    return out


def evaluate_encoder(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    recipe: Callable[[Tensor], Tensor] | None = None,
    full_recipe: Callable[[Tensor], Tensor] | None = None,
    protocol: str = "fast",
    paper_augment: Callable[[Tensor], Tensor] | None = None,
    paper_epochs: int = 100,
    layers: Sequence[str] = LAYERS,
    k: int = 5,
    weighted_k: int = 200,
    temperature: float = 0.07,
    alpha: float = 2.0,
    t: float = 2.0,
    seed: int = 0,
    probe_kwargs: dict | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Every number of the paper's evaluation for each layer, with the settings used.

    The probe, the k-NN and the mean classifiers are fitted on ``train_set`` and scored on
    ``test_set``; alignment is measured on two ``recipe`` views of every test image (seeded),
    uniformity exactly over all test embeddings, both on L2-normalised features. The
    spectral metrics are of the same test features as the layer gives them (the penultimate
    layer not normalised); LiDAR takes the two alignment views of each test item as one
    class, so it needs ``recipe``.

    Args:
        model: The encoder.
        train_set: Items ``(image, label)`` as stored (e.g. uint8 images).
        test_set: Held-out items, same format; never seen in training.
        transform: Deterministic preprocessing before the encoder (e.g.
            ``build_recipe("cifar10_eval")``); ``None`` when items are ready for the model.
        recipe: The training augmentation making positive pairs; ``None`` skips alignment.
        full_recipe: A second augmentation to measure alignment under (``alignment_full``),
            e.g. the full preset when training used only some of its components
            (``data.augment``); ``None``: ``alignment_full`` equals ``alignment``.
        protocol: "fast" (L-BFGS probe on precomputed features), "paper" (Adam on augmented
            images, needs ``paper_augment``) or "both" (both, timed, on the same encoder).
        paper_augment: Training augmentation of the paper's probe.
        paper_epochs: Epochs of the paper's probe (100 in the paper).
        layers: Which of "embedding" and "penultimate" to evaluate.
        k: Neighbours of the majority-vote k-NN (5 in the paper).
        weighted_k, temperature: The weighted k-NN monitor (200 neighbours, T = 0.07).
        alpha, t: Alignment exponent and uniformity scale.
        seed: Seeds the probe's validation split, the paper probe and the positive pairs.
        probe_kwargs: Extra arguments of :func:`linear_probe`.
        batch_size, device, num_workers, progress: How to run the encoder.

    Returns:
        ``{"layers": {name: {...}}, "settings": {...}, "n_train", "n_test", "seconds"}``;
        each layer holds ``linear_acc``, ``knn5_acc``, ``knn_weighted_acc``, ``mean_acc``
        (the mean classifier: nearest class centroid, cosine), ``alignment``,
        ``alignment_full``, ``uniformity``, ``uniformity_bound``, ``dim``, the probe
        details, the spectral metrics (``rankme``, ``effective_rank``, ``stable_rank``,
        ``alpha_req``, ``gaussian_w2``, ``lidar``: None where undefined, or ``lidar``
        without ``recipe``) and ``spectral_undefined``, the reason for each None.
    """
    if protocol not in ("fast", "paper", "both"):
        raise ValueError(f"protocol must be 'fast', 'paper' or 'both', got {protocol!r}")
    if protocol != "fast" and paper_augment is None:
        raise ValueError("the paper protocol needs paper_augment (see probe_augmentation)")
    unknown = set(layers) - set(LAYERS)
    if not layers or unknown:
        raise ValueError(f"layers must be among {LAYERS}, got {list(layers)}")
    device = model_device(model, device)
    run: dict[str, Any] = {"batch_size": batch_size, "device": device,
           "num_workers": num_workers,
           "progress": progress}
    seconds: dict[str, float] = {}
    tic = time.perf_counter()
    train = extract_features(model, Mapped(train_set, transform), desc="train features", **run)
    test = extract_features(model, Mapped(test_set, transform), desc="test features", **run)
    seconds["features"] = time.perf_counter() - tic
    results: dict = {"layers": {}}
    for name in layers:
        tic = time.perf_counter()
        results["layers"][name] = _layer_numbers(
            train, test, name, k=k, weighted_k=weighted_k, temperature=temperature, t=t,
            seed=seed, device=device, fast_probe=protocol != "paper",
            probe_kwargs=probe_kwargs or {},
        )
        seconds[f"{name}_numbers"] = time.perf_counter() - tic
    if protocol != "fast":
        tic = time.perf_counter()
        paper = linear_probe_paper(
            model, train_set, test_set, augment=paper_augment, transform=transform,  # type: ignore[arg-type]
            layers=layers, epochs=paper_epochs, seed=seed, device=device,
            num_workers=num_workers, progress=progress,
        )
        seconds["paper_probe"] = time.perf_counter() - tic
        for name, res in paper.items():
            results["layers"][name]["probe_paper"] = res
    if recipe is not None:
        tic = time.perf_counter()
        aligned, lidars = heldout_alignments_and_lidar(model, test_set, recipe, seed=seed,
                                                       alpha=alpha, **run)
        aligned_full = aligned if full_recipe is None else heldout_alignments(
            model, test_set, full_recipe, seed=seed, alpha=alpha, **run)
        seconds["alignment"] = time.perf_counter() - tic
    for name, layer in results["layers"].items():
        probe = layer.get("probe_fast") or layer["probe_paper"]
        layer["linear_acc"] = probe["accuracy"]
        layer["alignment"] = aligned.get(name) if recipe is not None else None
        layer["alignment_full"] = aligned_full.get(name) if recipe is not None else None
        tic = time.perf_counter()
        values, reasons = spectral_numbers_of(
            test.layer(name).to(device), lidars.get(name) if recipe is not None else None)
        layer.update(values)
        layer["spectral_undefined"] = reasons
        seconds[f"{name}_spectral"] = time.perf_counter() - tic
        if protocol == "both":
            fast_s = seconds["features"] + layer["probe_fast"]["seconds"]
            layer["fast_vs_paper"] = {
                "fast_seconds": fast_s,
                "paper_seconds": layer["probe_paper"]["seconds"],
                "speedup": layer["probe_paper"]["seconds"] / fast_s,
                "accuracy_gap": layer["probe_fast"]["accuracy"]
                - layer["probe_paper"]["accuracy"],
            }
    results["n_train"], results["n_test"] = len(train.labels), len(test.labels)
    results["seconds"] = seconds
    results["settings"] = {
        "protocol": protocol, "paper_epochs": paper_epochs if protocol != "fast" else None,
        "layers": list(layers), "k": k, "weighted_k": weighted_k, "temperature": temperature,
        "alpha": alpha, "t": t, "seed": seed, "batch_size": batch_size, "device": str(device),
        "alignment_pairs": "two seeded recipe views of each test item" if recipe else None,
        "probe_kwargs": {k_: v for k_, v in (probe_kwargs or {}).items()},
    }
    return results


def _check_encoder_reads(model: nn.Module, transform: Callable, items: Dataset, name: str,
                         config: TrainConfig) -> None:
    """Refuse, in one line, a data set whose items the checkpoint's encoder cannot take (say
    1-D signals for an image CNN), before any features are extracted."""
    x = transform(items[0][0]).unsqueeze(0)
    try:
        with torch.no_grad():
            model(x.to(next(model.parameters()).device))
    except (ValueError, RuntimeError) as err:
        raise ValueError(
            f"the checkpoint's {config.model.name} encoder was trained on "
            f"{config.data.name!r} and cannot read {name!r} items (shape "
            f"{tuple(x.shape[1:])} after the {name}_eval recipe); evaluate it on data of its "
            f"kind, e.g. --data {config.data.name}"
        ) from err


def evaluate_checkpoint(
    path: str | Path,
    *,
    data: str | None = None,
    root: str | None = None,
    random_init: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    **kwargs,
) -> dict:
    """Evaluate a training checkpoint (see :func:`evaluate_encoder`) on its data set.

    The encoder is rebuilt from the checkpoint's stored config. The probe is fitted on the
    "train" split and scored on "test" where the data set has one, else on "val", the
    seeded stratified hold-out that training never saw (rebuilt with the checkpoint's data
    options). Positive pairs use the checkpoint's training recipe with its ``data.augment``
    components (batched when training was), features its "_eval" transform; with
    ``data.augment``, ``alignment_full`` is measured under the full preset recipe too.

    Args:
        path: A ``checkpoint.pt`` written by training.
        data: Data set name; defaults to the checkpoint's.
        root: Data location; defaults to the checkpoint's.
        random_init: Evaluate the checkpoint's architecture as training starts it instead
            of the trained weights (``checkpoint.load_encoder``'s seeded build); with the
            run's seed these are the run's initial weights.
        n_train, n_test: Evaluate on seeded random subsets of these sizes (``None``: all).
        seed: Seed of the subsets, the random init and everything in ``evaluate_encoder``.
        device: Where to run (``devices.default_device``: CUDA when available).
        **kwargs: Passed to :func:`evaluate_encoder` (``protocol``, ``paper_epochs``, ...).

    Returns:
        The :func:`evaluate_encoder` dict plus ``"checkpoint"`` and ``"data"`` entries.
    """
    from alignuniform.checkpoint import load_encoder
    from alignuniform.data import (
        RECIPES,
        build_augment_recipe,
        build_batch_recipe,
        build_recipe,
        build_run_splits,
    )
    from alignuniform.devices import default_device

    device = default_device(device)
    model, config = load_encoder(path, device=device, random_init=random_init, seed=seed)
    name = data or config.data.name
    same_data = name == config.data.name
    root = root or (config.data.root if same_data else None)
    recipe_name = config.data.recipe if same_data else name
    augment = (config.data.augment or None) if same_data else None
    if recipe_name not in RECIPES or f"{recipe_name}_eval" not in RECIPES:
        raise ValueError(
            f"no recipe pair {recipe_name!r} / {recipe_name + '_eval'!r} for data set {name!r}; "
            f"known recipes: {', '.join(sorted(RECIPES))}"
        )
    eval_spec = resolve(RECIPES, f"{recipe_name}_eval", "recipe")
    # positive pairs from the executor training used (the batched one is also much faster)
    batched = config.data.batched_augment and same_data
    train_set, test_set, test_split = build_run_splits(
        {**(dataclasses.asdict(config.data) if same_data else {}), "name": name}, root,
        progress=kwargs.get("progress", True),
    )
    train_set = random_subset(train_set, n_train, seed)
    test_set = random_subset(test_set, n_test, seed + 1)
    if not same_data:
        _check_encoder_reads(model, build_recipe(f"{recipe_name}_eval"), test_set, name, config)
    build = build_batch_recipe if batched else build_recipe
    results = evaluate_encoder(
        model, train_set, test_set,
        transform=build_recipe(f"{recipe_name}_eval"),
        recipe=build(recipe_name, augment),
        full_recipe=build(recipe_name) if augment else None,
        paper_augment=(probe_augmentation(eval_spec, batched=batched)
                       if isinstance(eval_spec, RecipeSpec) else None),
        seed=seed, device=device, **kwargs,
    )
    results["checkpoint"] = {
        "path": str(path), "model": config.model.name, "feat_dim": config.model.feat_dim,
        "random_init": random_init,
    }
    results["data"] = {
        "name": name, "root": None if root is None else str(root), "train_split": "train",
        "test_split": test_split, "recipe": recipe_name, "eval_transform": f"{recipe_name}_eval",
        "pairs": "batched" if batched else "per-sample",
        "n_train": n_train, "n_test": n_test,
    }
    if augment:  # the components the run trained with
        results["data"]["augment"] = build_augment_recipe(recipe_name, augment).describe()
    return results

