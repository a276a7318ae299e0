"""Dense evaluation: a 1x1-conv linear probe on frozen dense features (mean IoU, pixel
accuracy), and dense alignment/uniformity on held-out scenes with ground-truth pairs.

The probe follows the usual linear protocol for segmentation: per-channel standardisation
(statistics of the training features), one 1x1 convolution to ``num_classes`` logits,
bilinear upsampling of the logits to the label map's size, pixel-wise cross-entropy,
AdamW (lr 0.05, weight decay 1e-4, batch 32, 20 epochs by default) on shuffled
mini-batches (seeded). Scores: pixel accuracy over all pixels, and the
mean over classes of ``IoU = TP / (TP + FP + FN)`` counted over the whole test set, classes
with no pixel in either prediction or truth left out of the mean (their IoU is ``None``).

Examples:
    With a dense encoder ``model`` and scene data sets (not run as a test):

    >>> from alignuniform.evaluate.dense_probe import extract_dense_features, dense_linear_probe
    >>> ftr, ytr = extract_dense_features(model, train_scenes)  # doctest: +SKIP
    >>> fte, yte = extract_dense_features(model, test_scenes)  # doctest: +SKIP
    >>> result = dense_linear_probe(ftr, ytr, fte, yte, num_classes=11)  # doctest: +SKIP
    >>> result.miou, result.pixel_accuracy  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from alignuniform import dense
from alignuniform.evaluate.features import frozen, model_device


@dataclass(frozen=True)
class DenseProbeResult:
    """Scores of a dense probe on a test set.

    Attributes:
        miou: mean IoU over the classes present in prediction or truth.
        pixel_accuracy: fraction of pixels labelled correctly.
        per_class_iou: IoU of each class (``None`` where the class is absent from both).
        confusion: ``(K, K)`` counts, rows = truth, columns = prediction.
    """

    miou: float
    pixel_accuracy: float
    per_class_iou: tuple[float | None, ...]
    confusion: Tensor

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "per_class_iou": list(self.per_class_iou)}


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` int64 counts of (truth, prediction) over all pixels."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    t, p = target.flatten().long(), pred.flatten().long()
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target labels must lie in 0..{num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes).cpu()


def segmentation_scores(confusion: Tensor) -> DenseProbeResult:
    """mIoU, pixel accuracy and per-class IoU from a confusion matrix."""
    conf = confusion.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    total = float(conf.sum())
    if total == 0:
        raise ValueError("no pixels to score")
    present = union > 0
    iou = tp / union.clamp(min=1)
    per_class = tuple(float(v) if ok else None for v, ok in zip(iou, present, strict=True))
    return DenseProbeResult(float(iou[present].mean()), float(tp.sum()) / total, per_class,
                            confusion)


class DenseLinearProbe(nn.Module):
    """Standardise channels, 1x1 conv to logits, bilinear upsampling to ``out_size``."""

    def __init__(self, mean: Tensor, std: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1))
        self.register_buffer("std", std.reshape(1, -1, 1, 1))
        self.conv = nn.Conv2d(mean.numel(), num_classes, 1)

    def forward(self, f: Tensor, out_size: tuple[int, int]) -> Tensor:
        logits = self.conv((f - self.mean) / self.std)  # type: ignore[operator]
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(self, f: Tensor, out_size: tuple[int, int], batch_size: int = 256) -> Tensor:
        return torch.cat([self(f[s : s + batch_size], out_size).argmax(1)
                          for s in range(0, len(f), batch_size)])


def _check_features(features: Tensor, labels: Tensor, name: str) -> None:
    if features.ndim != 4 or labels.ndim != 3 or len(features) != len(labels):
        raise ValueError(
            f"{name}: features must be (N, C, h, w) and labels (N, H, W) with the same N, got "
            f"{tuple(features.shape)} and {tuple(labels.shape)}"
        )
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name}: features contain NaN or Inf")


def fit_dense_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    epochs: int = 20,
    lr: float = 5e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
) -> DenseLinearProbe:
    """Train a 1x1-conv probe on frozen ``(N, C, h, w)`` features for ``(N, H, W)`` labels."""
    _check_features(features, labels, "fit_dense_probe")
    features = features.float()
    mean = features.mean(dim=(0, 2, 3))
    std = features.std(dim=(0, 2, 3)).clamp(min=1e-6)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = DenseLinearProbe(mean, std, num_classes).to(features.device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    out_size = tuple(labels.shape[-2:])
    labels = labels.long()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=gen)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            loss = F.cross_entropy(probe(features[idx], out_size), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


def dense_linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    **fit_kwargs,
) -> DenseProbeResult:
    """Fit a dense linear probe on the training features, score it on the test features.

    ``fit_kwargs`` go to :func:`fit_dense_probe` (``epochs``, ``lr``, ``weight_decay``,
    ``batch_size``, ``seed``).
    """
    _check_features(test_features, test_labels, "dense_linear_probe (test)")
    probe = fit_dense_probe(train_features, train_labels, num_classes, **fit_kwargs)
    pred = probe.predict(test_features.float(), tuple(test_labels.shape[-2:]))  # type: ignore[arg-type]
    return segmentation_scores(confusion_matrix(pred, test_labels, num_classes))


def _dense_fn(model: nn.Module, which: str) -> Callable[[Tensor], Tensor]:
    if which not in ("dense", "backbone"):
        raise ValueError(f"which must be 'dense' or 'backbone', got {which!r}")
    if hasattr(model, "forward_dense"):
        return lambda x: model.forward_dense(x)[which]  # type: ignore[operator]
    if which == "backbone" and hasattr(model, "feature_maps"):
        return lambda x: list(model.feature_maps(x).values())[-1]  # type: ignore[operator]
    raise TypeError(f"{type(model).__name__} has no forward_dense (use models.DenseEncoder)")


def extract_dense_features(
    model: nn.Module,
    dataset: Dataset,
    *,
    which: str = "dense",
    batch_size: int = 128,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """``(features (N, C, h, w), labels (N, H, W))`` of a data set of ``(image, label_map)``
    (e.g. ``SceneDataset`` with an evaluation ``transform``), with the model frozen.

    Args:
        which: ``"dense"`` (the dense head's normalised map) or ``"backbone"`` (the stage's
            conv map; for any encoder, its last ``feature_maps`` entry).
    """
    fn = _dense_fn(model, which)
    dev = model_device(model, device)
    feats, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with frozen(model):
        for x, y in loader:
            feats.append(fn(x.to(dev).float()).cpu())
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)


@dataclass(frozen=True)
class HeldoutDenseMetrics:
    """Dense alignment over ground-truth (geometric) pairs and dense uniformity, held out."""

    alignment: float
    uniformity: float
    uniformity_cross_image: float | None
    n_pairs: int
    n_locations: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def heldout_dense_metrics(
    model: nn.Module,
    views: Dataset,
    *,
    which: str = "dense",
    mode: str = "nearest",
    t: float = 2.0,
    alpha: float = 2.0,
    n_locations: int | None = 20_000,
    seed: int = 0,
    batch_size: int = 128,
    device: str | torch.device | None = None,
) -> HeldoutDenseMetrics:
    """Dense alignment and uniformity of a frozen model on two-view items with geometry.

    ``views`` yields ``DenseTwoViews`` dicts (e.g. of held-out scenes). Positive pairs are
    the ground truth of the crops: ``dense.geometric_pairs(mode=mode)``. Uniformity is taken
    over view-1 locations (all, or ``n_locations`` drawn with ``seed``).
    """
    fn = _dense_fn(model, which)
    dev = model_device(model, device)
    gen = torch.Generator().manual_seed(seed)
    f1s, align_sum, weight_sum, n_pairs = [], 0.0, 0.0, 0
    loader = DataLoader(views, batch_size=batch_size, shuffle=False)
    with frozen(model):
        for batch in loader:
            f1 = fn(batch["view1"].to(dev).float()).cpu()
            f2 = fn(batch["view2"].to(dev).float()).cpu()
            sizes = batch["size"]
            pairs = dense.geometric_pairs(batch["box1"], batch["box2"], tuple(f1.shape[-2:]),  # type: ignore[arg-type]
                                          tuple(f2.shape[-2:]), batch["flip1"], batch["flip2"],  # type: ignore[arg-type]
                                          image_size=sizes, mode=mode)
            if not pairs.is_empty:
                w = float(pairs.weight.sum())
                align_sum += dense.dense_alignment(f1, f2, pairs, alpha) * w
                weight_sum += w
                n_pairs += len(pairs)
            f1s.append(f1)
    if n_pairs == 0:
        raise ValueError("no ground-truth location pair in any item (crops never overlap)")
    fmap = torch.cat(f1s)
    total = fmap.shape[0] * fmap.shape[2] * fmap.shape[3]
    n_loc = None if n_locations is None or n_locations >= total else n_locations
    u = dense.dense_uniformity(fmap, t, n_locations=n_loc,
                               seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
    return HeldoutDenseMetrics(align_sum / weight_sum, u.all_pairs, u.cross_image, n_pairs,
                               u.n_locations)
