"""One training step of the whole dense stack, without the engine: scenes -> views with
geometry -> dense encoder -> pairs (each scheme) -> dense + global losses -> gradients.
Dense training runs through the engine are tested in test_train_dense_run.py."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from alignuniform import dense
from alignuniform.data.dense_views import DenseTwoViews
from alignuniform.data.recipes import CIFAR10_MEAN, CIFAR10_STD, RecipeSpec
from alignuniform.data.scenes import SceneDataset
from alignuniform.losses import LossCombination
from alignuniform.models.dense_head import DenseEncoder


@pytest.mark.parametrize("scheme", dense.PAIR_SCHEMES)
def test_one_step_per_scheme(scheme):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    spec = RecipeSpec(size=32, scale=(0.3, 1.0), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    data = DenseTwoViews(SceneDataset(pool, torch.arange(16) % 10, 8, "multi", canvas=32), spec)
    batch = next(iter(DataLoader(data, batch_size=8)))
    model = DenseEncoder("small_cnn", feat_dim=16, width=8, hidden_dim=16, dense_dim=16,
                         probe_size=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out1, out2 = model.forward_dense(batch["view1"]), model.forward_dense(batch["view2"])
    shape = tuple(out1["dense"].shape[-2:])
    pairs = dense.location_pairs(
        scheme, boxes1=batch["box1"], boxes2=batch["box2"], flips1=batch["flip1"],
        flips2=batch["flip2"], shape1=shape, shape2=shape, image_size=batch["size"],
        g1=out1["backbone"], g2=out2["backbone"], threshold=0.0 if scheme == "mutual_nn" else None)
    assert len(pairs) > 0
    crit = dense.DenseLossCombination(w_align=1, w_uniform=1, w_contrastive=1,
                                      global_loss=LossCombination(w_align=1, w_uniform=1))
    losses = crit(out1["dense"], out2["dense"], pairs, out1["global"], out2["global"])
    assert torch.isfinite(losses["loss"])
    opt.zero_grad()
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert model.dense_head.net[0].weight.grad.abs().sum() > 0
    assert model.backbone.stages["conv1"][0].weight.grad.abs().sum() > 0
    assert all(torch.isfinite(gr).all() for gr in grads)
    opt.step()


def test_unknown_scheme():
    with pytest.raises(ValueError, match="scheme must be one of"):
        dense.location_pairs("optical_flow")
    with pytest.raises(ValueError, match="needs the matching maps"):
        dense.location_pairs("feature_argmax")
