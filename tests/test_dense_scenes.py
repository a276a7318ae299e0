"""Scenes with per-pixel labels (alignuniform.data.scenes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from alignuniform.data.scenes import SceneDataset, build_scenes

CIFAR_ZIP = Path("/work/shared/data/cifar10/cifar10-train-jpeg.zip")


def pool(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 10


@pytest.mark.parametrize("variant", ["single", "multi"])
def test_scenes_are_seeded_and_labels_match_masks(variant):
    images, labels = pool()
    ds = SceneDataset(images, labels, 30, variant, seed=3)
    again = SceneDataset(images, labels, 30, variant, seed=3)
    other = SceneDataset(images, labels, 30, variant, seed=4)
    n_objects = []
    for idx in range(30):
        sc = ds.scene(idx)
        img, lab = ds[idx]
        assert img.shape == (3, 64, 64) and img.dtype == torch.uint8
        assert lab.shape == (64, 64) and lab.dtype == torch.int64
        assert torch.equal(img, again[idx][0]) and torch.equal(lab, again[idx][1])
        # rebuild the label map from the pasted masks, in paste order
        expected = torch.full((64, 64), 10)
        for obj in sc.objects:
            expected[obj.mask] = obj.label
            assert obj.label == int(labels[obj.source])
            assert obj.mask.sum() > 0
        assert torch.equal(lab, expected)
        # the visible part of the last object shows its own resized pixels
        last = sc.objects[-1]
        patch = TF.resize(images[last.source], [last.side, last.side], antialias=True)
        canvas = torch.zeros_like(img)
        canvas[:, last.y0 : last.y0 + last.side, last.x0 : last.x0 + last.side] = patch
        assert torch.equal(img[:, last.mask], canvas[:, last.mask])
        n_objects.append(len(sc.objects))
    assert not all(torch.equal(ds[i][0], other[i][0]) for i in range(5))
    if variant == "single":
        assert set(n_objects) == {1}
    else:
        assert min(n_objects) >= 1 and max(n_objects) <= 4 and len(set(n_objects)) > 1


def test_order_independent_and_cache():
    images, labels = pool()
    ds = SceneDataset(images, labels, 6, "multi", canvas=96, seed=1)
    late = ds[5]
    ds.cache()
    assert torch.equal(ds[5][0], late[0]) and ds[5][0].shape == (3, 96, 96)
    x, y = ds.tensors()
    assert x.shape == (6, 3, 96, 96) and y.shape == (6, 96, 96)
    with pytest.raises(IndexError):
        ds.scene(6)


def test_bad_arguments():
    images, labels = pool()
    with pytest.raises(ValueError, match="variant"):
        SceneDataset(images, labels, 3, "many")
    with pytest.raises(ValueError, match="uint8"):
        SceneDataset(images.float(), labels, 3)
    with pytest.raises(ValueError, match="labels must lie"):
        SceneDataset(images, labels + 5, 3)


def test_build_scenes_from_a_split():
    ds = build_scenes(None, "val", variant="single", n_scenes=4, dataset="synthetic", n=20)
    img, lab = ds[0]
    assert img.shape == (3, 64, 64) and int(lab.max()) <= 10


@pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"needs the CIFAR-10 zip at {CIFAR_ZIP}")
def test_cifar_scenes_come_from_the_holdout():
    ds = build_scenes(CIFAR_ZIP, "val", variant="multi", n_scenes=3, progress=False)
    assert len(ds.images) == 5000  # the 10 % stratified val hold-out
    img, lab = ds[2]
    assert img.shape == (3, 64, 64) and set(lab.unique().tolist()) <= set(range(11))
