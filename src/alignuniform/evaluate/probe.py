"""Linear probes on a frozen encoder: the fast L-BFGS protocol and the paper's Adam protocol."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from alignuniform.data.recipes import RecipeSpec
from alignuniform.data.split import stratified_split
from alignuniform.evaluate._inputs import accuracy, check_labels, check_pair
from alignuniform.evaluate.features import (
    Mapped,
    augmented_batches,
    embed,
    extract_features,
    frozen,
    model_device,
)

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def fit_logreg(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    weight_decay: float,
    *,
    init: tuple[Tensor, Tensor] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
) -> tuple[Tensor, Tensor, int]:
    """Minimise mean cross-entropy + weight_decay/2 * ||W||^2 (bias free) with L-BFGS."""
    if init is None:
        weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device)
        bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    else:
        weight, bias = (p.detach().clone() for p in init)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight + bias, y)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
    return weight.detach(), bias.detach(), n_iter


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    seed: int = 0,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    standardize: bool = True,
    patience: int | None = 2,
    select_max: int | None = 10_000,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> dict:
    """Multinomial logistic regression on frozen features, solved to convergence.

    The fast protocol: features are standardised with the training mean and standard
    deviation, the L2 strength is chosen on a seeded stratified validation split of the
    training features, and the classifier is refitted on all training features with that
    strength. Full-batch L-BFGS, warm-started along the regularisation path from the
    strongest strength down, runs on the features' device. The weakest strengths are the
    slowest to solve and rarely win, so the path stops after ``patience`` candidates in a
    row that do not beat the best validation accuracy.

    Args:
        train_x: (N, D) training features.
        train_y: (N,) integer labels, none negative.
        test_x: (M, D) test features.
        test_y: (M,) integer labels.
        seed: seed of the validation split.
        weight_decays: candidate L2 strengths ``lambda`` of
            ``mean CE + lambda/2 * ||W||^2``; a single value skips the validation split.
        val_fraction: share of each class held out to choose ``lambda``.
        patience: stop the path after this many non-improving candidates (``None``: try all).
        select_max: choose ``lambda`` on a seeded stratified subset of at most this many
            training samples (``None``: all); the final fit always uses all of them.
        standardize: centre and scale features with training statistics first.
        max_iter: L-BFGS iteration cap per fit.
        tol: L-BFGS gradient tolerance (max-norm of the gradient of the mean loss) that
            counts as converged; 1e-4 gives the same accuracies as 1e-6 on CIFAR-10
            features in about half the iterations.

    Returns:
        A JSON-ready dict: ``accuracy`` (test), ``train_accuracy``, ``weight_decay`` (chosen),
        ``val_accuracy`` per candidate tried, ``iterations`` of the final fit, ``seconds`` and
        the settings.
    """
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = check_pair(train_x, train_y, test_x, test_y)
    weight_decays = [float(w) for w in weight_decays]
    if not weight_decays or any(not math.isfinite(w) or w < 0 for w in weight_decays):
        raise ValueError(f"weight_decays must be non-negative numbers, got {weight_decays}")
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    if len(torch.unique(train_y)) < 2:
        raise ValueError("train labels hold a single class; a classifier needs at least two")
    train_y = train_y.to(train_x.device)
    if standardize:
        mean = train_x.mean(dim=0)
        # constant features would divide by zero; leave them at zero instead
        std = train_x.std(dim=0).clamp_min(1e-8)
        train_x = (train_x - mean) / std
        test_x = (test_x.to(train_x.device) - mean) / std
    else:
        test_x = test_x.to(train_x.device)
    test_y = test_y.to(train_x.device)

    val_accuracy: dict[str, float] = {}
    best = weight_decays[0]
    init = None
    if len(weight_decays) > 1:
        labels = train_y.cpu().numpy()
        pool = np.arange(len(labels))
        if select_max is not None and select_max < len(labels):
            # the weakly regularised fits dominate the cost and only rank candidates
            pool = stratified_split(labels, select_max / len(labels), seed)[1]
        fit_idx, val_idx = (
            torch.as_tensor(pool[i], dtype=torch.long, device=train_x.device)
            for i in stratified_split(labels[pool], val_fraction, seed)
        )
        if len(val_idx) == 0:
            raise ValueError(
                "too few training samples to hold out a validation split; pass a single "
                "weight_decay"
            )
        best_acc, worse = -1.0, 0
        # strongest first: each solution warm-starts the next, weaker, problem
        for wd in sorted(weight_decays, reverse=True):
            w, b, _ = fit_logreg(
                train_x[fit_idx], train_y[fit_idx], num_classes, wd,
                init=init, max_iter=max_iter, tol=tol,
            )
            init = (w, b)
            acc = accuracy(train_x[val_idx] @ w + b, train_y[val_idx])
            val_accuracy[f"{wd:g}"] = acc
            # strict '>' keeps the strongest regularisation among ties
            if acc > best_acc:
                best, best_acc, best_init, worse = wd, acc, (w, b), 0
            else:
                worse += 1
                if patience is not None and worse >= patience:
                    break
        init = best_init
    w, b, n_iter = fit_logreg(
        train_x, train_y, num_classes, best, init=init, max_iter=max_iter, tol=tol
    )
    return {
        "protocol": "fast",
        "accuracy": accuracy(test_x @ w + b, test_y),
        "train_accuracy": accuracy(train_x @ w + b, train_y),
        "weight_decay": best,
        "val_accuracy": val_accuracy,
        "iterations": n_iter,
        "converged": n_iter < max_iter,
        "seconds": time.perf_counter() - start,
        "n_train": int(train_x.shape[0]),
        "n_test": int(test_x.shape[0]),
        "dim": int(train_x.shape[1]),
        "standardize": standardize,
        "val_fraction": val_fraction,
        "patience": patience,
        "select_max": select_max,
        "tol": tol,
        "seed": seed,
    }


def probe_augmentation(eval_recipe: RecipeSpec, *, batched: bool = False) -> Callable:
    """The paper's probe-training augmentation matching an evaluation recipe.

    RandomResizedCrop(size, scale=(0.08, 1)) and a horizontal flip, with the evaluation
    recipe's size and normalisation and no colour changes; for STL-10 that is the paper's
    RandomResizedCrop(64, scale=(0.08, 1)) + flip, evaluated on Resize(70) + CenterCrop(64).
    ``batched=True`` gives the ``BatchAugment`` executor of the same recipe (much faster on
    CPU; see ``alignuniform.data.recipes`` for its small differences).
    """
    spec = replace(eval_recipe, train=True, scale=(0.08, 1.0), flip=True,
                   jitter=(0.0, 0.0, 0.0, 0.0), p_jitter=0.0, p_gray=0.0, resize=None)
    return spec.batched() if batched else spec.per_sample()


def linear_probe_paper(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    *,
    augment: Callable,
    transform: Callable[[Tensor], Tensor] | None = None,
    layers: Sequence[str] = ("penultimate",),
    num_classes: int | None = None,
    epochs: int = 100,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    batch_size: int = 128,
    gamma: float = 0.2,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, dict]:
    """Wang & Isola's linear evaluation: linear layers on a frozen encoder, trained with Adam.

    Adam (lr 1e-3, betas (0.5, 0.999)), batch 128, ``epochs`` (100 in the paper) with the
    learning rate multiplied by ``gamma`` at 60 % and 80 % of training (epochs 60 and 80),
    fed with features of freshly augmented training images every epoch; one linear layer
    per requested layer shares the encoder passes. Accuracy is measured on ``test_set``
    through the deterministic ``transform``.

    Args:
        model: Frozen encoder (kept in eval mode; its mode is restored afterwards).
        train_set: Items ``(image, label)`` with stored (untransformed) images.
        test_set: Same, for testing.
        augment: Random training augmentation, per sample or a ``BatchAugment`` (see
            :func:`probe_augmentation`).
        transform: Deterministic test-time preprocessing; ``None`` uses images as stored.
        layers: Layers to probe ("embedding", "penultimate").
        num_classes: Defaults to ``len(train_set.classes)`` or the test labels' maximum + 1.
        epochs, lr, betas, batch_size, gamma: The optimisation schedule.
        seed: Seeds the classifier initialisation, shuffling and augmentations.
        device, num_workers, progress: Where and how to run.

    Returns:
        Per layer, a JSON-ready dict with ``accuracy``, ``train_accuracy`` (on augmented
        images, last epoch), ``seconds`` (the whole protocol, test features included) and the
        settings.
    """
    start = time.perf_counter()
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = model_device(model, device)
    test = extract_features(model, Mapped(test_set, transform), batch_size=256, device=device,
                            num_workers=num_workers, progress=progress, desc="test features")
    test_y = check_labels(test.labels, len(test.labels), "test labels")
    if num_classes is None:
        classes = getattr(train_set, "classes", None)
        num_classes = len(classes) if classes else int(test_y.max()) + 1
    milestones = sorted({max(1, round(0.6 * epochs)), max(1, round(0.8 * epochs))})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = nn.ModuleDict({
            name: nn.Linear(test.layer(name).shape[1], num_classes) for name in layers
        }).to(device)
        opt = torch.optim.Adam(heads.parameters(), lr=lr, betas=betas)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)
        for epoch in tqdm(range(epochs), desc="paper probe", disable=not progress, leave=False):
            correct = dict.fromkeys(layers, 0)
            seen = 0
            batches = augmented_batches(train_set, augment, views=1, batch_size=batch_size,
                                        num_workers=num_workers, seed=seed + epoch,
                                        device=device, shuffle=True)
            for (x,), y in batches:
                y = check_labels(y, len(x), "train labels").to(device)
                if int(y.max()) >= num_classes:
                    raise ValueError(
                        f"train label {int(y.max())} >= num_classes={num_classes}; pass "
                        "num_classes"
                    )
                with frozen(model):
                    emb, pen = embed(model, x.to(device))
                feats = {"embedding": emb, "penultimate": pen}
                loss = 0.0
                for name in layers:
                    logits = heads[name](feats[name].float())  # type: ignore[union-attr]
                    loss = loss + nn.functional.cross_entropy(logits, y)  # type: ignore[assignment]
                    correct[name] += int((logits.argmax(1) == y).sum())
                seen += len(y)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[attr-defined]
                opt.step()
            sched.step()
    results = {}
    with torch.no_grad():
        for name in layers:
            logits = heads[name](test.layer(name).to(device))
            results[name] = {
                "protocol": "paper",
                "accuracy": accuracy(logits, test_y.to(device)),
                "train_accuracy": correct[name] / seen,
                "epochs": epochs,
                "milestones": milestones,
                "lr": lr,
                "betas": list(betas),
                "batch_size": batch_size,
                "gamma": gamma,
                "n_train": len(train_set),  # type: ignore[arg-type]
                "n_test": len(test_y),
                "seed": seed,
            }
    seconds = time.perf_counter() - start
    for r in results.values():
        r["seconds"] = seconds
    return results
