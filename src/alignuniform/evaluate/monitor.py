"""The training monitor: a cheap held-out weighted k-NN accuracy, alignment and uniformity
that ``alignuniform.train`` logs every few epochs (``heldout_<key>`` in ``epochs.jsonl``).

The full evaluation of a finished encoder is ``evaluate.checkpoint_eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset

from alignuniform import metrics
from alignuniform.evaluate.features import (
    Mapped,
    extract_features,
    heldout_alignment,
    random_subset,
)
from alignuniform.evaluate.knn import knn_accuracy


def make_monitor(
    train_set: Dataset,
    test_set: Dataset,
    recipe: Callable[[Tensor], Tensor],
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    every: int = 1,
    n_train: int | None = 5000,
    n_test: int | None = 1000,
    k: int = 200,
    temperature: float = 0.07,
    t: float = 2.0,
    seed: int = 0,
    batch_size: int = 256,
    num_workers: int = 0,
) -> Callable[[nn.Module, int], dict]:
    """A cheap training monitor: weighted k-NN accuracy, alignment and uniformity.

    The subsets (``n_train`` reference and ``n_test`` held-out items) and the positive pairs
    are fixed once by ``seed``, so values are comparable across epochs; the caller's random
    state and the model's train/eval mode are left as they were.

    Args:
        train_set, test_set: Items ``(image, label)`` as stored.
        recipe: Training augmentation making the held-out positive pairs.
        transform: Deterministic preprocessing before the encoder.
        every: Evaluate when ``epoch % every == 0``; other epochs return ``{}``.
        n_train, n_test: Subset sizes (``None``: all).
        k, temperature: The weighted k-NN.
        t: Uniformity scale.
        seed: Seed of the subsets and the pairs.
        batch_size, num_workers: How to run the encoder.

    Returns:
        ``monitor(model, epoch) -> {"knn_acc", "align", "uniform"}``.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    train_sub = Mapped(random_subset(train_set, n_train, seed), transform)
    test_sub = random_subset(test_set, n_test, seed + 1)
    if k > len(train_sub):
        raise ValueError(
            f"k={k} but the monitor's reference set has only {len(train_sub)} samples; lower "
            "k or raise n_train"
        )
    run: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers,
                                  "progress": False}

    def monitor(model: nn.Module, epoch: int) -> dict:
        if epoch % every:
            return {}
        train = extract_features(model, train_sub, **run)
        test = extract_features(model, Mapped(test_sub, transform), **run)
        return {
            "knn_acc": knn_accuracy(train.embeddings, train.labels, test.embeddings,
                                    test.labels, k=k, temperature=temperature),
            "align": heldout_alignment(model, test_sub, recipe, seed=seed, **run),
            "uniform": float(metrics.uniformity(test.embeddings, t=t)),
        }

    return monitor
