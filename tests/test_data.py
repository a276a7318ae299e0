"""Tests for alignuniform.data: splits, the zip reader and its cache, data sets, recipes."""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from alignuniform.data import (
    DATASETS,
    RECIPES,
    TwoViews,
    build_batch_recipe,
    build_dataset,
    build_recipe,
    recipes,
    stratified_split,
    zip_images,
)
from alignuniform.data.augment import ops
from alignuniform.data.recipes import RecipeSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_ZIP = SHARED / "cifar10" / "cifar10-train-jpeg.zip"


def _jpeg(rng: np.random.Generator, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def tiny_zip(tmp_path):
    """A zip of 3 classes x 4 JPEGs at train/<class>/<i>.jpg, like the offline CIFAR-10."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for cls in ("cat", "ant", "bee"):
            for i in range(4):
                zf.writestr(f"train/{cls}/{i:04d}.jpg", _jpeg(rng))
    return path


def test_stratified_split_is_seeded_disjoint_and_per_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 5])
    train, val = stratified_split(labels, 0.2, seed=1)
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.bincount(labels[val]).tolist() == [2, 4, 6, 1]
    again, _ = stratified_split(labels, 0.2, seed=1)
    other, _ = stratified_split(labels, 0.2, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, 1.0)


def test_zip_decodes_in_place_and_caches(tiny_zip, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    # what a kill -9 mid-write left an hour ago goes; a write in progress elsewhere stays
    cache.mkdir()
    killed, live = cache / ".old.npz.1.ab.tmp", cache / ".other.npz.2.cd.tmp"
    killed.write_bytes(b"x")
    live.write_bytes(b"y")
    os.utime(killed, (1, 1))
    images, labels, classes, skipped = zip_images.load_zip_cached(
        tiny_zip, cache_dir=cache, progress=False
    )
    assert images.shape == (12, 8, 8, 3) and images.dtype == np.uint8
    assert classes == ["ant", "bee", "cat"] and skipped == []
    assert np.bincount(labels).tolist() == [4, 4, 4]
    # independent reference: PIL decode of one member straight from the zip
    with zipfile.ZipFile(tiny_zip) as zf:
        ref = np.asarray(Image.open(io.BytesIO(zf.read("train/bee/0002.jpg"))).convert("RGB"))
    assert np.array_equal(images[4 + 2], ref)
    assert len(list(cache.glob("*.npz"))) == 1
    assert live.exists() and not killed.exists()

    def no_decode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(zip_images, "decode_zip", no_decode)
    cached = zip_images.load_zip_cached(tiny_zip, cache_dir=cache, progress=False)
    assert np.array_equal(cached[0], images) and cached[2] == classes
    # a modified zip (new mtime) is decoded again
    os.utime(tiny_zip, ns=(1, 1))
    with pytest.raises(AssertionError, match="cache"):
        zip_images.load_zip_cached(tiny_zip, cache_dir=cache, progress=False)


def test_corrupt_zip_member_is_named_or_skipped_with_a_count(tiny_zip, tmp_path):
    with zipfile.ZipFile(tiny_zip, "a") as zf:
        zf.writestr("train/cat/9999.jpg", b"not a jpeg")
    with pytest.raises(ValueError, match=r"train/cat/9999\.jpg.*skip_corrupt=True"):
        zip_images.decode_zip(tiny_zip, progress=False)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        images, *_ = zip_images.load_zip_cached(
            tiny_zip, cache_dir=tmp_path / "c", skip_corrupt=True, progress=False
        )
    assert len(images) == 12


def test_cifar10_zip_dataset_splits(tiny_zip, tmp_path):
    kw = {"cache_dir": tmp_path / "c", "progress": False, "val_fraction": 0.25}
    train = build_dataset("cifar10", str(tiny_zip), "train", **kw)
    val = build_dataset("cifar10_zip", str(tiny_zip), "val", **kw)
    assert len(train) == 9 and len(val) == 3 and sorted(val.labels.tolist()) == [0, 1, 2]
    image, label = train[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and isinstance(label, int)
    with pytest.raises(ValueError, match="split='val'"):
        build_dataset("cifar10", str(tiny_zip), "test", **kw)


def test_progress_reaches_the_zip_decoder_and_is_ignored_by_generated_sets(tiny_zip, tmp_path,
                                                                          capsys):
    from alignuniform.data import build_run_splits

    build_dataset("cifar10", str(tiny_zip), "train", cache_dir=tmp_path / "a", progress=False)
    assert "decoding" not in capsys.readouterr().err
    build_dataset("cifar10", str(tiny_zip), "train", cache_dir=tmp_path / "b")  # default: shown
    assert "decoding tiny.zip" in capsys.readouterr().err
    build_run_splits({"name": "cifar10", "root": str(tiny_zip),
                      "kwargs": {"cache_dir": str(tmp_path / "c")}}, progress=False)
    assert "decoding" not in capsys.readouterr().err
    assert len(build_dataset("mnist1d", None, "test", progress=False, n_test=10)) == 10


def _write_zip(path: Path, top: str, classes, per_class: int, seed: int) -> dict:
    """A zip of ``top/<class>/NNNN.jpg``; returns {member: (class, decoded RGB array)}."""
    rng = np.random.default_rng(seed)
    members = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for cls in classes:
            for i in range(per_class):
                data = _jpeg(rng)
                zf.writestr(f"{top}/{cls}/{i:04d}.jpg", data)
                members[f"{top}/{cls}/{i:04d}.jpg"] = (
                    cls, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return members


def test_cifar10_test_split_reads_the_test_zip_beside_the_training_zip(tiny_zip, tmp_path):
    from alignuniform.data import SplitNotAvailable, build_run_splits

    kw = {"cache_dir": tmp_path / "c", "progress": False, "val_fraction": 0.25}
    cfg = {"name": "cifar10", "root": str(tiny_zip), "val_fraction": 0.25,
           "kwargs": {"cache_dir": str(tmp_path / "c"), "progress": False}}
    with pytest.raises(SplitNotAvailable, match="cifar10-test-jpeg.zip"):
        build_dataset("cifar10", str(tiny_zip), "test", **kw)
    assert build_run_splits(cfg)[2] == "val"

    # the training zip's classes, in another member order: labels follow class names
    members = _write_zip(tiny_zip.with_name("cifar10-test-jpeg.zip"), "test",
                         ("bee", "cat", "ant"), 2, seed=5)
    test = build_dataset("cifar10", str(tiny_zip), "test", **kw)
    assert test.classes == ["ant", "bee", "cat"] and len(test) == 6
    expected = sorted(members.items())  # the reader's order: sorted member names
    for (image, label), (_, (cls, pixels)) in zip(test, expected, strict=True):
        assert test.classes[label] == cls
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), pixels)
    train, held_out, split = build_run_splits(cfg)
    assert split == "test" and len(held_out) == 6 and len(train) == 9  # val still held out

    _write_zip(tiny_zip.with_name("cifar10-test-jpeg.zip"), "test", ("ant", "cat"), 2, seed=6)
    with pytest.raises(ValueError, match=r"classes \['ant', 'cat'\] but .*tiny\.zip has"):
        build_dataset("cifar10", str(tiny_zip), "test", **kw)
    # a broken test zip is an error, not a missing split to replace by val
    tiny_zip.with_name("cifar10-test-jpeg.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a zip file"):
        build_run_splits(cfg)


def test_imagefolder_split_folders_and_the_evaluation_split(tmp_path):
    from alignuniform.data import SplitNotAvailable, build_run_splits

    rng = np.random.default_rng(1)

    def fill(folder: Path, classes, n: int) -> None:
        for cls in classes:
            (folder / cls).mkdir(parents=True)
            for i in range(n):
                (folder / cls / f"{i}.jpg").write_bytes(_jpeg(rng, 10))

    with_test, with_val, flat = tmp_path / "t", tmp_path / "v", tmp_path / "f"
    fill(with_test / "train", "ab", 3)
    fill(with_test / "test", "ab", 2)
    fill(with_val / "train", "ab", 3)
    fill(with_val / "val", "ab", 1)
    fill(flat, "ab", 5)
    for root, n_train, n_held, split in ((with_test, 6, 4, "test"), (with_val, 6, 2, "val"),
                                         (flat, 8, 2, "val")):
        train, held_out, got = build_run_splits({"name": "imagefolder", "root": str(root)})
        assert (len(train), len(held_out), got) == (n_train, n_held, split), root
        assert sorted(held_out.labels.tolist()) == [0] * (n_held // 2) + [1] * (n_held // 2)
    with pytest.raises(SplitNotAvailable, match=r"split folders train/, test/ but no val/"):
        build_dataset("imagefolder", str(with_test), "val")
    with pytest.raises(SplitNotAvailable, match="no test/ folder"):
        build_dataset("imagefolder", str(flat), "test")
    # test/ alone is a split folder, not a class
    fill(tmp_path / "only" / "test", "ab", 1)
    with pytest.raises(SplitNotAvailable, match="no train/ folder"):
        build_dataset("imagefolder", str(tmp_path / "only"), "train")
    fill(with_test / "test", "c", 1)  # a class training never had
    with pytest.raises(ValueError, match=r"classes \['a', 'b', 'c'\] but .*train has"):
        build_dataset("imagefolder", str(with_test), "test")


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        build_dataset("cifar10", str(tmp_path / "nowhere"), "train")
    with pytest.raises(FileNotFoundError, match="stl10"):
        build_dataset("stl10", str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="class"):
        build_dataset("imagefolder", str(tmp_path / "nowhere"), "train")
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'.*cifar10"):
        build_dataset("cifar100", None, "train")
    with pytest.raises(ValueError, match=r"dataset 'synthetic': .*'size'; its options: n, "
                                         r"image_size, num_classes, seed, transform"):
        build_dataset("synthetic", None, "train", size=8)


def test_imagefolder_names_a_corrupt_file_or_skips_it(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            (tmp_path / cls / f"{i}.jpg").write_bytes(_jpeg(rng, 12))
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    train = build_dataset("imagefolder", str(tmp_path), "train", val_fraction=0.2)
    val = build_dataset("imagefolder", str(tmp_path), "val", val_fraction=0.2)
    assert len(train) + len(val) == 11 and train[0][0].shape == (3, 12, 12)
    everything = build_dataset("imagefolder", str(tmp_path), "train", val_fraction=0.0)
    broken = [i for i, (p, _) in enumerate(everything.samples) if p.endswith("broken.jpg")]
    with pytest.raises(ValueError, match="broken.jpg"):
        everything[broken[0]]
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ok = build_dataset("imagefolder", str(tmp_path), "train", val_fraction=0.0,
                           skip_corrupt=True)
    assert len(ok) == 10


def test_registries_hold_the_shared_names():
    assert {"cifar10", "cifar10_zip", "stl10", "imagefolder", "mnist1d"} <= set(DATASETS)
    assert DATASETS["mnist1d"] == "alignuniform.data.mnist1d:build_dataset"
    assert RECIPES["mnist1d"] == "alignuniform.data.mnist1d:mnist1d_view"
    assert {"stl10", "stl10_eval", "cifar10", "cifar10_eval"} <= set(RECIPES)
    with pytest.raises(ValueError, match="unknown recipe"):
        build_recipe("simclr")


def test_stl10_recipe_is_the_papers():
    ops = build_recipe("stl10").transforms
    names = [type(op).__name__ for op in ops]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomApply",
                     "RandomGrayscale", "ToDtype", "Normalize"]
    assert ops[0].size == (64, 64) and ops[0].scale == (0.08, 1.0)
    jitter = ops[2].transforms[0]
    assert ops[2].p == 1.0 and jitter.brightness == (0.6, 1.4) and jitter.hue == (-0.4, 0.4)
    assert ops[3].p == 0.2
    assert ops[5].mean == [0.4409, 0.4279, 0.3868] and ops[5].std == [0.2683, 0.2610, 0.2687]
    out = build_recipe("stl10")(torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8))
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    evaluated = build_recipe("stl10_eval")(torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8))
    assert evaluated.shape == (3, 64, 64)


def test_two_views_are_independent_views_of_one_image():
    torch.manual_seed(0)
    data = build_dataset("synthetic", None, "train", n=8)
    v1, v2, label = TwoViews(data, build_recipe("cifar10"))[3]
    assert v1.shape == v2.shape == (3, 32, 32) and label == data[3][1]
    assert not torch.equal(v1, v2)
    with pytest.raises(TypeError, match="callable"):
        TwoViews(data, "cifar10")


@pytest.mark.parametrize(
    ("ours", "theirs", "factors"),
    [
        (ops.adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.4]),
        (ops.adjust_contrast, TF.adjust_contrast, [0.6, 1.0, 1.4]),
        (ops.adjust_saturation, TF.adjust_saturation, [0.0, 0.6, 1.4]),
        (ops.adjust_hue, TF.adjust_hue, [-0.4, -0.1, 0.0, 0.25, 0.4]),
    ],
)
def test_batched_color_ops_match_torchvision_per_image(ours, theirs, factors):
    torch.manual_seed(0)
    x = torch.rand(len(factors), 3, 9, 9)
    x[0, :, :2] = 0.5  # gray pixels: zero saturation, undefined hue
    got = ours(x, torch.tensor(factors).view(-1, 1, 1, 1))
    for i, f in enumerate(factors):
        torch.testing.assert_close(got[i], theirs(x[i], f), atol=1e-5, rtol=1e-5)


def test_batched_crop_at_full_scale_is_identity_or_flip():
    spec = RecipeSpec(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=(0, 0, 0, 0),
                      p_gray=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    x = torch.rand(64, 3, 8, 8)
    out = spec.batched()(x, torch.Generator().manual_seed(0))
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    flipped = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_batched_recipe_shapes_statistics_and_seeding():
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
    aug = build_batch_recipe("cifar10")
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == (128, 3, 32, 32) and torch.equal(a, b)
    torch.manual_seed(0)
    per_sample = torch.stack([build_recipe("cifar10")(img) for img in x])
    # same recipe, two executors: pixel statistics agree up to the sampling noise of 128
    # per-image jitter draws (about 0.04 in normalised units for the mean)
    assert abs(a.mean().item() - per_sample.mean().item()) < 0.15
    assert abs(a.std().item() - per_sample.std().item()) < 0.15
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (recipes.CIFAR10_MEAN,
                                                             recipes.CIFAR10_STD))
    pixels = a * std + mean
    gray = torch.isclose(pixels[:, 0], pixels[:, 1], atol=1e-5).flatten(1).all(1)
    assert 0.08 < gray.float().mean().item() < 0.35  # RandomGrayscale p = 0.2
    with pytest.raises(ValueError, match="batched"):
        build_batch_recipe("mnist1d")


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"offline CIFAR-10 not found at {CIFAR_ZIP}")
def test_offline_cifar10_zip(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        val = build_dataset("cifar10", str(CIFAR_ZIP), "val", progress=False)
    train = build_dataset("cifar10", str(CIFAR_ZIP.parent), "train", progress=False)
    assert len(train) == 45_000 and len(val) == 5_000
    assert torch.bincount(val.labels).tolist() == [500] * 10
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert train.images.shape[1:] == (3, 32, 32)


class _FakeTorchvisionSet:
    """Stands in for torchvision's CIFAR10/STL10 (which verify real files) to test our wiring."""

    def __init__(self, root, train=None, split=None, download=False):
        rng = np.random.default_rng(0 if (train or split == "train") else 1)
        self.split = split
        if split is None:  # CIFAR10: channels last, targets
            n = 40 if train else 20
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = list(np.arange(n) % 10)
        else:  # STL10: channels first, labels (-1 = unlabelled)
            n = {"train": 20, "test": 10, "unlabeled": 30}[split]
            self.data = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
            self.labels = np.full(n, -1) if split == "unlabeled" else np.arange(n) % 10
        self.classes = [f"c{i}" for i in range(10)]


def test_torchvision_cifar10_and_stl10_wiring(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeTorchvisionSet)
    monkeypatch.setattr(torchvision.datasets, "STL10", _FakeTorchvisionSet)
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "stl10_binary").mkdir()
    assert len(build_dataset("cifar10", str(tmp_path), "train")) == 40  # has a test split
    assert len(build_dataset("cifar10", str(tmp_path), "test")) == 20
    with pytest.raises(ValueError, match="val_fraction > 0"):
        build_dataset("cifar10", str(tmp_path), "val")
    val = build_dataset("cifar10", str(tmp_path), "val", val_fraction=0.25)
    assert len(val) == 10 and len(build_dataset("cifar10", str(tmp_path), "train",
                                                val_fraction=0.25)) == 30
    both = build_dataset("stl10", str(tmp_path), "train+unlabeled")
    assert len(both) == 50 and both[0][0].shape == (3, 96, 96) and both[49][1] == -1
    fake = _FakeTorchvisionSet(None, split="train")
    assert torch.equal(both[0][0], torch.from_numpy(fake.data[0]))  # channel order kept
    assert len(build_dataset("stl10", str(tmp_path), "test")) == 10
    assert len(build_dataset("stl10", str(tmp_path), "val", val_fraction=0.5)) == 10
