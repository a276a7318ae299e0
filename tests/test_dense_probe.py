"""Dense probe (mIoU, pixel accuracy) and held-out dense metrics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alignuniform.data.dense_views import DenseTwoViews
from alignuniform.data.recipes import CIFAR10_MEAN, CIFAR10_STD, RecipeSpec
from alignuniform.data.scenes import SceneDataset
from alignuniform.evaluate.dense_probe import (
    confusion_matrix,
    dense_linear_probe,
    extract_dense_features,
    heldout_dense_metrics,
    segmentation_scores,
)
from alignuniform.models.dense_head import DenseEncoder


def test_scores_on_a_known_confusion():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 2, 0]])
    res = segmentation_scores(confusion_matrix(pred, target, 4))
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: 3/4; 3 absent
    assert res.per_class_iou[:3] == pytest.approx((1 / 3, 2 / 3, 3 / 4))
    assert res.per_class_iou[3] is None
    assert res.miou == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)
    assert res.pixel_accuracy == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="0..3"):
        confusion_matrix(pred, target + 2, 4)


def blocks(n, seed):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 5, (n, 4, 4), generator=g)
    return coarse.repeat_interleave(4, 1).repeat_interleave(4, 2)  # (n, 16, 16)


def test_probe_learns_linearly_separable_features():
    ytr, yte = blocks(64, 0), blocks(32, 1)
    g = torch.Generator().manual_seed(2)

    def feats(y):
        onehot = F.one_hot(y, 5).permute(0, 3, 1, 2).float()
        return 3 * onehot + 0.1 * torch.randn(onehot.shape, generator=g)

    res = dense_linear_probe(feats(ytr), ytr, feats(yte), yte, 5, epochs=10)
    assert res.miou > 0.99 and res.pixel_accuracy > 0.99
    noise = dense_linear_probe(torch.randn(64, 5, 16, 16, generator=g), ytr,
                               torch.randn(32, 5, 16, 16, generator=g), yte, 5, epochs=3)
    assert noise.miou < 0.4
    # features at a lower resolution than the labels: logits are upsampled
    low = dense_linear_probe(F.avg_pool2d(feats(ytr), 4), ytr, F.avg_pool2d(feats(yte), 4),
                             yte, 5, epochs=30)
    assert low.pixel_accuracy > 0.8
    with pytest.raises(ValueError, match="same N"):
        dense_linear_probe(feats(ytr)[:3], ytr, feats(yte), yte, 5)


def test_extraction_and_heldout_metrics_on_scenes():
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g)
    spec = RecipeSpec(size=64, scale=(0.3, 1.0), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    evaluation = RecipeSpec(size=64, train=False, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    scenes = SceneDataset(pool, torch.arange(20) % 10, 6, "multi",
                          transform=evaluation.per_sample())
    torch.manual_seed(0)
    model = DenseEncoder("small_cnn", feat_dim=16, width=8, hidden_dim=16, dense_dim=12)
    f, y = extract_dense_features(model, scenes, batch_size=4)
    assert f.shape == (6, 12, 8, 8) and y.shape == (6, 64, 64)
    assert model.training  # mode restored
    fb, _ = extract_dense_features(model, scenes, which="backbone")
    assert fb.shape == (6, 32, 8, 8)
    res = dense_linear_probe(f, y, f, y, 11, epochs=2)
    assert 0 <= res.miou <= 1
    raw = SceneDataset(pool, torch.arange(20) % 10, 6, "multi")
    torch.manual_seed(1)
    m = heldout_dense_metrics(model, DenseTwoViews(raw, spec), batch_size=4, n_locations=100)
    assert m.n_pairs > 0 and m.n_locations == 100
    assert 0 <= m.alignment <= 4 and -8 <= m.uniformity <= 0
