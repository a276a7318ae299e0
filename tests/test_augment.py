"""Tests for the augmentation components and the recipes built from them."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from alignuniform.data import (
    COMPONENTS,
    build_augment_recipe,
    build_batch_recipe,
    build_recipe,
    recipes,
)
from alignuniform.data.augment import blur, grayscale, make_component, parse_augment, sobel
from alignuniform.evaluate.probe import probe_augmentation

# ---------------------------------------------------------------------------------------------
# the paper's recipes are presets: same views for the same seed as before components

# The views that the recipes gave before they were built from components (commit 06a4c03's
# alignuniform.data.recipes, kept frozen in tests/ until commit 9f47d2a), for the seeds and
# images below, made with torch 2.14.1 and torchvision 0.29.1. Each view tensor is stored
# as its SHA-256 (of the float32 bytes: a bit-for-bit check) and 256 evenly strided values
# (so a failure shows the numbers that moved).
REFERENCE = torch.load(Path(__file__).parent / "data" / "recipe_views.pt", weights_only=True)


def _images(name: str, n: int = 4) -> torch.Tensor:
    side = {"stl10": 96, "imagefolder": 240}.get(name.split("_")[0], 32)
    g = torch.Generator().manual_seed(123)
    return torch.randint(0, 256, (n, 3, side, side + 6), dtype=torch.uint8, generator=g)


def _assert_reproduces(views: torch.Tensor, ref: dict) -> None:
    assert (tuple(views.shape), str(views.dtype)) == (ref["shape"], ref["dtype"])
    flat = views.contiguous().view(-1)
    torch.testing.assert_close(flat[:: max(1, flat.numel() // 256)], ref["sample"],
                               rtol=0, atol=0)
    assert hashlib.sha256(flat.numpy().tobytes()).hexdigest() == ref["sha256"]


SPEC_RECIPES = ["stl10", "stl10_eval", "cifar10", "cifar10_eval", "imagefolder",
                "imagefolder_eval", "identity"]


@pytest.mark.parametrize("name", SPEC_RECIPES)
def test_presets_reproduce_the_recipes_before_components(name):
    """Per-sample (two views per image, global generator), batched (its own generator) and
    batched on the global generator (two batches in a row): the stored views, bit for bit."""
    spec, ref = getattr(recipes, name.upper()), REFERENCE["presets"][name]
    assert dataclasses.asdict(spec) == ref["params"]  # the numbers themselves are unchanged
    x = _images(name, 3 if name.startswith("imagefolder") else 4)
    torch.manual_seed(7)
    _assert_reproduces(torch.stack([spec.per_sample()(img) for img in x for _ in range(2)]),
                       ref["per_sample"])
    _assert_reproduces(spec.batched()(x, torch.Generator().manual_seed(5)), ref["batched"])
    torch.manual_seed(9)
    aug = spec.batched()
    _assert_reproduces(torch.stack([aug(x), aug(x)]), ref["global"])


@pytest.mark.parametrize("name", ["stl10_eval", "cifar10_eval", "identity"])
def test_probe_augmentation_reproduces_the_one_before_components(name):
    """Random crops of the full scale range and flips, nothing else, on the preset's size
    and normalisation: the stored views, per sample and batched (two batches in a row)."""
    spec, ref = getattr(recipes, name.upper()), REFERENCE["probe"][name]
    x = _images(name)
    torch.manual_seed(3)
    _assert_reproduces(torch.stack([probe_augmentation(spec)(img) for img in x]),
                       ref["per_sample"])
    torch.manual_seed(4)
    aug = probe_augmentation(spec, batched=True)
    _assert_reproduces(torch.stack([aug(x), aug(x)]), ref["batched"])


def test_preset_with_empty_augment_is_the_preset():
    x = _images("cifar10")
    a = build_batch_recipe("cifar10", {})(x, torch.Generator().manual_seed(1))
    b = build_batch_recipe("cifar10")(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert build_augment_recipe("cifar10").describe() == {
        "crop": {"scale": [0.2, 1.0], "ratio": [3 / 4, 4 / 3]},
        "flip": {"p": 0.5},
        "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1,
                         "p": 0.8},
        "color_drop": {"p": 0.2},
    }


# ---------------------------------------------------------------------------------------------
# the config mapping


def test_parse_augment_merges_switches_and_orders():
    base = build_augment_recipe("cifar10").components
    got = parse_augment({"cutout": {}, "crop": {"scale": [0.5, 1]}, "color_jitter": False,
                         "flip": True}, base)
    assert [c.name for c in got] == ["crop", "flip", "color_drop", "cutout"]
    assert got[0].scale == (0.5, 1.0) and got[0].ratio == (3 / 4, 4 / 3)  # ratio inherited
    only = parse_augment({"base": "none", "rotation": {"angles": [90]}, "sobel": None}, base)
    assert [(c.name, c.params()) for c in only] == [("rotation", {"angles": [90]})]
    # the fixed order, whatever the mapping's order
    names = [c.name for c in parse_augment({n: {} for n in reversed(COMPONENTS)})]
    assert names == list(COMPONENTS)


@pytest.mark.parametrize(("augment", "match"), [
    ({"rotate": {}}, r"unknown augmentation component 'rotate'; valid components: crop, flip, "
                     r"color_jitter, color_drop, rotation, gaussian_blur, sobel"),
    ({"crop": {"scales": [0.2, 1]}}, r"'crop': unknown parameter\(s\) 'scales'; valid "
                                     r"parameters: scale, ratio"),
    ({"crop": {"scale": [0.5, 0.2]}}, r"'crop': scale must be \[lo, hi\]"),
    ({"flip": {"p": 1.5}}, r"'flip': p must be a number in \[0.0, 1.0\]"),
    ({"flip": {"p": True}}, r"'flip': p must be a number"),
    ({"rotation": {"angles": [45]}}, r"'rotation': angles must be .* multiples of 90"),
    ({"gaussian_blur": {"kernel": 4}}, r"'gaussian_blur': kernel must be odd"),
    ({"gaussian_blur": {"kernel": 65}}, r"'gaussian_blur': kernel 65 is too large"),
    ({"base": "all"}, r"augment.base must be 'recipe' .* or 'none'"),
])
def test_bad_augment_configs_fail_at_build_time_naming_the_valid_choices(augment, match):
    with pytest.raises(ValueError, match=match):
        build_augment_recipe("cifar10", augment)
    with pytest.raises(ValueError, match=match):
        build_recipe("cifar10", augment)
    with pytest.raises(ValueError, match=match):
        build_batch_recipe("cifar10", augment)


def test_bad_augment_types():
    with pytest.raises(TypeError, match="mapping of parameters, true or false"):
        build_recipe("cifar10", {"crop": 0.5})
    with pytest.raises(TypeError, match="augment must be a mapping"):
        build_recipe("cifar10", ["crop"])


def test_components_that_cannot_apply_to_the_data_fail_at_build_time():
    with pytest.raises(ValueError, match=r"component 'rotation' cannot apply to recipe "
                                         r"'mnist1d': it makes 1-D signals"):
        build_recipe("mnist1d", {"rotation": {}})
    with pytest.raises(ValueError, match="component 'sobel' cannot apply to recipe 'mnist1d'"):
        build_augment_recipe("mnist1d", {"base": "none", "sobel": True})
    with pytest.raises(ValueError, match="unknown augmentation component"):  # names first
        build_recipe("mnist1d", {"sobell": {}})
    with pytest.raises(ValueError, match="deterministic evaluation transform"):
        build_recipe("cifar10_eval", {"flip": {}})
    gray = recipes.RecipeSpec(size=16, jitter=(0, 0, 0, 0), p_gray=0.0, mean=(0.5,),
                              std=(0.25,))
    with pytest.raises(ValueError, match="'color_drop': needs RGB images .* have 1"):
        gray.augment_recipe({"color_drop": {}})
    with pytest.raises(ValueError, match="'color_jitter': saturation and hue need RGB"):
        gray.augment_recipe({"color_jitter": {}})
    # what does apply to single-channel images: brightness/contrast jitter, Sobel, the rest
    ok = gray.augment_recipe({"color_jitter": {"saturation": 0, "hue": 0}, "sobel": {},
                              "rotation": {}, "gaussian_blur": {}, "gaussian_noise": {},
                              "cutout": {}})
    x = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    assert ok.batched()(x).shape == (3, 1, 16, 16)
    assert ok.per_sample()(x[0]).shape == (1, 16, 16)


# ---------------------------------------------------------------------------------------------
# each component, both executors


def _only(name: str, **params) -> dict:
    return {"base": "none", name: params}


def _both(augment: dict, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample views, batched views), un-normalised back to [0, 1] pixels."""
    recipe = build_augment_recipe("cifar10", augment)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (recipe.mean, recipe.std))
    torch.manual_seed(seed)
    per_sample = torch.stack([recipe.per_sample()(img) for img in x])
    batched = recipe.batched()(x, torch.Generator().manual_seed(seed))
    return per_sample * std + mean, batched * std + mean


def _smooth_images(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    low = torch.rand(n, 3, 8, 8, generator=g)
    return (torch.nn.functional.interpolate(low, size=32, mode="bilinear") * 255).round().to(
        torch.uint8)


def test_no_component_is_the_image():
    x = _smooth_images(4)
    a, b = _both({"base": "none"}, x)
    assert torch.allclose(a, x / 255, atol=1e-6) and torch.allclose(b, x / 255, atol=1e-6)


def test_rotation_and_flip_are_exact():
    x = _smooth_images(4)
    for angle in (90, 180, 270):
        a, b = _both(_only("rotation", angles=[angle]), x)
        ref = torch.rot90(x / 255, angle // 90, (2, 3))
        assert torch.allclose(a, ref, atol=1e-6) and torch.allclose(b, ref, atol=1e-6)
    a, b = _both(_only("flip", p=1.0), x)
    assert torch.allclose(a, x.flip(-1) / 255, atol=1e-6)
    assert torch.allclose(b, x.flip(-1) / 255, atol=1e-6)
    # all four angles are drawn, each about a quarter of the time
    x = _smooth_images(400)
    _, b = _both(_only("rotation"), x)
    hits = [int(torch.isclose(b, torch.rot90(x / 255, k, (2, 3)), atol=1e-6)
                .flatten(1).all(1).sum()) for k in range(4)]
    assert all(60 < h < 140 for h in hits) and sum(hits) == 400


def test_sobel_matches_a_loop_reference_in_both_executors():
    x = _smooth_images(3)
    a, b = _both(_only("sobel", p=1.0), x)
    assert torch.allclose(a, b, atol=1e-5)
    g = grayscale(x / 255)[:, 0]
    p = torch.nn.functional.pad(g[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    ref = torch.zeros_like(g)
    for i in range(32):
        for j in range(32):
            w = p[:, i : i + 3, j : j + 3]
            gx = (w[:, :, 2] - w[:, :, 0]) @ torch.tensor([1.0, 2.0, 1.0])
            gy = (w[:, 2, :] - w[:, 0, :]) @ torch.tensor([1.0, 2.0, 1.0])
            ref[:, i, j] = (gx**2 + gy**2).sqrt() / 4
    assert torch.allclose(a[:, 0], ref.clamp(0, 1), atol=1e-5)
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1
    assert sobel(step).max() == 1  # a full-contrast edge


def test_batched_blur_matches_torchvision():
    x = _smooth_images(3).float() / 255
    for sigma, kernel in ((0.5, 3), (1.3, 5), (2.0, 7)):
        ref = v2.GaussianBlur(kernel, sigma=sigma)(x)
        assert torch.allclose(blur(x, torch.full((3,), sigma), kernel), ref, atol=1e-5)
    a, b = _both(_only("gaussian_blur", sigma=[1.0, 1.0], p=1.0), _smooth_images(3))
    assert torch.allclose(a, b, atol=1e-5)


def test_cutout_fills_one_square_with_the_mean_colour():
    x = torch.full((200, 3, 32, 32), 255, dtype=torch.uint8)
    mean = torch.tensor(recipes.CIFAR10_MEAN).view(1, 3, 1, 1)
    for views in _both(_only("cutout", side=0.25), x):
        filled = torch.isclose(views, mean.expand_as(views), atol=1e-5).all(1)  # (B, H, W)
        area = filled.flatten(1).sum(1)
        assert int(area.max()) == 64 and int(area.min()) >= 16  # 8x8, clipped at the border
        rows, cols = filled.any(2).sum(1), filled.any(1).sum(1)
        assert torch.equal(rows * cols, area)  # a rectangle
        assert (area == 64).float().mean() > 0.5


def test_noise_statistics_and_probability():
    x = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    for views in _both(_only("gaussian_noise", std=0.05), x):
        resid = views - 128 / 255
        assert abs(resid.std().item() - 0.05) < 0.002 and abs(resid.mean().item()) < 0.002
    for views in _both(_only("gaussian_noise", std=0.05, p=0.5), x):
        noisy = (views - 128 / 255).abs().flatten(1).amax(1) > 1e-4
        assert 16 < int(noisy.sum()) < 48


def test_colour_drop_and_jitter_components_both_executors():
    x = _smooth_images(200)
    for views in _both(_only("color_drop", p=1.0), x):
        assert torch.allclose(views[:, 0], views[:, 1], atol=1e-5)
    for views in _both(_only("color_drop", p=0.5), x):
        gray = torch.isclose(views[:, 0], views[:, 1], atol=1e-5).flatten(1).all(1)
        assert 70 < int(gray.sum()) < 130
    a, b = _both(_only("color_jitter", p=1.0), x)
    for views in (a, b):
        assert (views - x / 255).abs().mean() > 0.02 and views.min() >= 0 and views.max() <= 1
    assert abs(a.mean().item() - b.mean().item()) < 0.03


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_every_component_alone_gives_views_of_the_right_shape_in_both_executors(name):
    x = _images("cifar10", 6)[..., :32]
    a, b = _both(_only(name), x)
    assert a.shape == b.shape == (6, 3, 32, 32)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    # per-sample pipelines go to DataLoader workers: they must pickle
    pickle.loads(pickle.dumps(build_recipe("cifar10", _only(name))))
    assert name in make_component(name).name


def test_crop_absent_resizes_and_centre_crops_like_the_eval_transform():
    x = _images("stl10", 2)
    recipe = build_augment_recipe("stl10", {"base": "none"})
    per_sample = torch.stack([recipe.per_sample()(img) for img in x])
    centred = v2.Compose([v2.Resize(64, antialias=True), v2.CenterCrop(64),
                          v2.ToDtype(torch.float32, scale=True),
                          v2.Normalize(recipes.STL10_MEAN, recipes.STL10_STD)])
    assert torch.equal(per_sample, torch.stack([centred(img) for img in x]))
    batched = recipe.batched()(x)
    assert batched.shape == per_sample.shape
    assert (batched - per_sample).abs().mean() < 0.05  # antialiased bilinear, same geometry


# ---------------------------------------------------------------------------------------------
# evaluation of a run trained with data.augment


@pytest.mark.parametrize("batched", [False, True])
def test_evaluate_checkpoint_uses_the_runs_components_and_the_full_recipe(tmp_path, batched):
    from alignuniform.checkpoint import save_checkpoint
    from alignuniform.evaluate import evaluate_checkpoint
    from alignuniform.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", feat_dim=8, width=4, hidden_dim=16)
    data = {"name": "synthetic", "root": None, "recipe": "cifar10", "kwargs": {"n": 40},
            "batched_augment": batched}
    paths = {}
    for tag, augment in (("preset", None), ("none", {"base": "none"})):
        cfg = {"model": {"name": "small_cnn", "feat_dim": 8,
                         "kwargs": {"width": 4, "hidden_dim": 16}},
               "data": {**data, **({"augment": augment} if augment else {})}}
        paths[tag] = save_checkpoint(tmp_path / tag / "checkpoint.pt",
                                     {"model": model.state_dict(), "config": cfg, "epoch": 1})
    kwargs = dict(weighted_k=10, layers=["embedding"], progress=False,
                  probe_kwargs={"weight_decays": [1e-2]})
    preset = evaluate_checkpoint(paths["preset"], **kwargs)
    none = evaluate_checkpoint(paths["none"], **kwargs)
    p, n = preset["layers"]["embedding"], none["layers"]["embedding"]
    assert "augment" not in preset["data"] and p["alignment_full"] == p["alignment"] > 0
    assert none["data"]["augment"] == {}
    # no component: both views are the image, so alignment is 0; under the full recipe it is
    # the preset's (same weights, same seeded pairs)
    assert n["alignment"] == pytest.approx(0, abs=1e-10)
    assert n["alignment_full"] == pytest.approx(p["alignment"], rel=1e-6)
    assert n["mean_acc"] == p["mean_acc"] and n["linear_acc"] == p["linear_acc"]


# ---------------------------------------------------------------------------------------------
# the study's sweep file


def test_augment_study_sweep_is_figure_5s_grid_and_every_recipe_builds():
    import itertools
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "sweeps" / "augment_study.yaml"
    sweep = yaml.safe_load(path.read_text())
    assert (path.parent / sweep["base"]).is_file()
    recipes_ = sweep["grid"]["data.augment"]
    transforms = {  # SimCLR's seven, as components
        "crop": ("crop",), "cutout": ("cutout",), "color": ("color_jitter", "color_drop"),
        "sobel": ("sobel",), "noise": ("gaussian_noise",), "blur": ("gaussian_blur",),
        "rotate": ("rotation",),
    }
    expected = [(), None] + [(t,) for t in transforms]
    expected += list(itertools.combinations(transforms, 2))
    got = []
    x = _images("cifar10", 2)[..., :32]
    for augment in recipes_:
        built = build_augment_recipe("cifar10", augment)
        assert built.batched()(x).shape == (2, 3, 32, 32)
        if not augment:
            got.append(None)  # the full preset
            continue
        names = set(built.describe())
        got.append(tuple(t for t, parts in transforms.items() if set(parts) <= names))
        assert names == {p for t in got[-1] for p in transforms[t]}
    assert got == expected and len(got) == 30
    # the preset's parameters where it has the component
    preset = build_augment_recipe("cifar10").describe()
    for augment in recipes_:
        for name, params in build_augment_recipe("cifar10", augment).describe().items():
            if name in preset:
                assert params == preset[name]
