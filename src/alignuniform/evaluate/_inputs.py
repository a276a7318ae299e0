"""Input checks and small helpers shared by the evaluation modules."""

from __future__ import annotations

import torch
from torch import Tensor


def check_features(x: object, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{what} must have shape (N, D) with N, D > 0, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be floating point, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or inf; check the encoder's outputs")
    return x


def check_labels(y: object, n: int, what: str) -> Tensor:
    if y is None:
        raise ValueError(
            f"{what} are missing: the probe and k-NN need one integer class label per sample "
            "(use a labelled split)"
        )
    if not isinstance(y, Tensor):
        raise TypeError(f"{what} must be a 1-D integer torch.Tensor, got {type(y).__name__}")
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{what} must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"{what} has {y.shape[0]} entries but there are {n} feature rows")
    missing = int((y < 0).sum())
    if missing:
        raise ValueError(
            f"{missing} of the {n} {what} are negative (unlabelled samples, e.g. STL-10's "
            "'unlabeled' split): the probe and k-NN need labelled samples"
        )
    return y.long()


def check_pair(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    train_x = check_features(train_x, "train_x")
    test_x = check_features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}; "
            "extract both from the same layer"
        )
    train_y = check_labels(train_y, train_x.shape[0], "train labels")
    test_y = check_labels(test_y, test_x.shape[0], "test labels")
    return train_x, train_y, test_x, test_y.to(test_x.device)


def accuracy(logits: Tensor, y: Tensor) -> float:
    return int((logits.argmax(dim=1) == y).sum()) / len(y)


def labels_tensor(y: object) -> Tensor:
    if y is None or (isinstance(y, (list, tuple)) and any(v is None for v in y)):
        raise ValueError("the data set yields no labels; evaluation needs (image, label) items")
    return torch.as_tensor(y, dtype=torch.long).reshape(-1)
