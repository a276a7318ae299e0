"""Dense two-view recipe (geometry through transforms.v2), dense head."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from alignuniform import dense
from alignuniform.data.dense_views import DenseTwoViews, DenseViewRecipe
from alignuniform.data.recipes import CIFAR10_MEAN, CIFAR10_STD, RecipeSpec
from alignuniform.data.scenes import SceneDataset
from alignuniform.models import build_model
from alignuniform.models.dense_head import DenseEncoder, DenseHead


def ramp(h=40, w=48):
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.stack([xs, ys, torch.zeros(h, w)]).float()


@pytest.mark.parametrize("seed", range(6))
def test_recovered_box_and_flip_match_the_pixels(seed):
    # channel 0/1 of the image hold each pixel centre's x/y: the view's pixels must show the
    # original coordinates that dense.bin_centres computes from the recovered box and flip
    # (bilinear without antialiasing reproduces a linear ramp exactly)
    torch.manual_seed(seed)
    image = ramp()
    recipe = DenseViewRecipe(v2.Compose([
        v2.RandomResizedCrop(24, scale=(0.2, 1.0), antialias=False), v2.RandomHorizontalFlip()]))
    view, box, flip = recipe(image)
    assert box.dtype == torch.float32 and flip.dtype == torch.bool
    assert 0 <= box[0] < box[2] <= 48 and 0 <= box[1] < box[3] <= 40
    centres, _ = dense.bin_centres(box[None], flip[None], (24, 24))
    got = view[:2].permute(1, 2, 0).reshape(-1, 2).double()
    # bilinear sampling clamps at the crop's edge: leave out the view's outer ring of pixels
    ring = torch.ones(24, 24, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    inner = ~ring.flatten()
    err = (got[inner] - centres[0][inner]).abs().max()
    assert err < 1e-3, f"box {box.tolist()} flip {bool(flip)}: max error {err:.3f} px"


def test_flip_detected_both_ways():
    image = ramp()
    box_ref = None
    for p, expected in ((0.0, False), (1.0, True)):
        torch.manual_seed(0)
        recipe = DenseViewRecipe(v2.Compose([v2.RandomResizedCrop(16), v2.RandomHorizontalFlip(p)]))
        _, box, flip = recipe(image)
        assert bool(flip) is expected
        box_ref = box if box_ref is None else box_ref
        torch.testing.assert_close(box, box_ref)  # the crop does not depend on the flip


@pytest.mark.parametrize("bad", [v2.RandomVerticalFlip(p=1.0), v2.RandomRotation((30, 30))])
def test_unsupported_geometry_is_an_error(bad):
    recipe = DenseViewRecipe(v2.Compose([v2.RandomResizedCrop(16), bad]))
    with pytest.raises(ValueError, match="crop/resize/horizontal flip"):
        recipe(ramp())


def test_dense_two_views_with_a_recipe_spec_on_scenes():
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g)
    scenes = SceneDataset(pool, torch.arange(20) % 10, 8, "multi")
    spec = RecipeSpec(size=64, scale=(0.3, 1.0), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    data = DenseTwoViews(scenes, spec)
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    assert batch["view1"].shape == (8, 3, 64, 64) and batch["view1"].dtype == torch.float32
    assert batch["box1"].shape == (8, 4) and batch["flip2"].shape == (8,)
    assert batch["target"].shape == (8, 64, 64)
    pairs = dense.geometric_pairs(batch["box1"], batch["box2"], (8, 8), (8, 8), batch["flip1"],
                                  batch["flip2"], image_size=(64, 64))
    assert len(pairs) > 0


def test_dense_head_and_encoder():
    head = DenseHead(16, out_dim=8)
    y = head(torch.randn(2, 16, 5, 5))
    assert y.shape == (2, 8, 5, 5)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2, 5, 5))
    model = build_model("dense", backbone="small_cnn", feat_dim=32, width=8, hidden_dim=16,
                        dense_dim=24)
    assert isinstance(model, DenseEncoder) and model.stage == "conv3"
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    out = model.forward_dense(x)
    assert out["dense"].shape == (4, 24, 8, 8) and out["backbone"].shape == (4, 32, 8, 8)
    torch.testing.assert_close(out["global"], model(x))
    torch.testing.assert_close(out["global"], model.backbone(x))
    torch.testing.assert_close(out["dense"], model.dense(x))
    assert "feature_maps" not in vars(model.backbone)  # the interception is undone
    out["dense"].sum().backward()
    assert model.dense_head.net[0].weight.grad is not None
    with pytest.raises(ValueError, match="stage"):
        DenseEncoder("small_cnn", stage="conv9")
