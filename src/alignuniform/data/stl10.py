"""STL-10 through torchvision (96x96; 5,000 labelled train, 8,000 test, 100,000 unlabelled)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from alignuniform.data.arrays import ArrayDataset
from alignuniform.data.split import holdout_indices

SPLITS = ("train", "val", "test", "unlabeled", "train+unlabeled")


def build_stl10(
    root: str | Path | None,
    split: str = "train",
    *,
    val_fraction: float = 0.0,
    split_seed: int = 0,
    download: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ArrayDataset:
    """STL-10 from ``root`` (torchvision's ``stl10_binary`` folder).

    Self-supervised training uses "train+unlabeled" (105,000 images; the unlabelled ones
    have label -1); evaluation uses "train" and "test". With ``val_fraction > 0`` a
    stratified, seeded "val" is held out of the labelled "train" images (and removed from
    "train" and "train+unlabeled").

    Args:
        root: Directory holding (or to receive, with ``download``) ``stl10_binary``.
        split: One of "train", "val", "test", "unlabeled", "train+unlabeled".
        val_fraction: Fraction of each class of "train" held out as "val".
        split_seed: Seed of the val split.
        download: Download the data (2.6 GB) if missing.
        transform: Applied to each (3, 96, 96) uint8 image.
    """
    if split not in SPLITS:
        raise ValueError(f"stl10 split must be one of {SPLITS}, got {split!r}")
    how = (
        "download it with build_dataset('stl10', ROOT, 'train', download=True) (2.6 GB into "
        "ROOT/stl10_binary) or from https://cs.stanford.edu/~acoates/stl10/"
    )
    if root is None:
        raise ValueError(f"stl10 needs a root; {how}")
    root = Path(root).expanduser()
    if not download and not (root / "stl10_binary").is_dir():
        raise FileNotFoundError(f"no STL-10 data at {root}; {how}")
    from torchvision.datasets import STL10

    parts = []
    if split in ("train", "val", "train+unlabeled"):
        base = STL10(str(root), split="train", download=download)
        labels = np.asarray(base.labels, dtype=np.int64)
        idx = holdout_indices(labels, "val" if split == "val" else "train", val_fraction,
                              split_seed, "stl10")
        parts.append((base.data[idx], labels[idx]))
        classes = list(base.classes)
    if split in ("test", "unlabeled", "train+unlabeled"):
        base = STL10(str(root), split="test" if split == "test" else "unlabeled",
                     download=download)
        parts.append((base.data, np.asarray(base.labels, dtype=np.int64)))
        classes = list(base.classes)
    images = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1)  # to channels last
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(images, labels, classes, transform)
