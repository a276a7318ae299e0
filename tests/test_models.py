"""Tests for alignuniform.models: the encoder contract, the paper's SmallAlexNet, the registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alignuniform.models import MODELS, build_model

IMAGE_MODELS = [
    ("small_alexnet", {"image_size": 32}, 32),
    ("resnet18_cifar", {}, 32),
    ("small_cnn", {}, 32),
]


@pytest.mark.parametrize(("name", "kwargs", "size"), IMAGE_MODELS)
def test_encoder_contract(name, kwargs, size):
    torch.manual_seed(0)
    model = build_model(name, feat_dim=16, **kwargs).eval()
    x = torch.randn(3, 3, size, size)
    z = model(x)
    feats = model.features(x)
    assert z.shape == (3, 16) and model.feat_dim == 16
    assert feats.shape == (3, model.penultimate_dim)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    # forward is exactly the normalised head of the penultimate features
    torch.testing.assert_close(z, F.normalize(model.head(feats), dim=1))
    maps = model.feature_maps(x)
    assert isinstance(maps, dict) and all(m.ndim == 4 and m.shape[0] == 3 for m in maps.values())


def test_small_alexnet_matches_paper_architecture():
    model = build_model("small_alexnet")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 96, (3, 3)), (96, 192, (3, 3)), (192, 384, (3, 3)), (384, 384, (3, 3)),
        (384, 192, (3, 3)),
    ]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (192 * 7 * 7, 4096), (4096, 4096), (4096, 128),
    ]
    # max-pools after conv1, conv2 and conv5 only
    pooled = [any(isinstance(m, nn.MaxPool2d) for m in block) for block in model.convs.values()]
    assert pooled == [True, True, False, False, True]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2
    # N(0, 0.02) initialisation: the 38M-entry fc6 weight pins the std tightly
    assert abs(linears[0].weight.std().item() - 0.02) < 2e-4
    assert abs(linears[0].weight.mean().item()) < 1e-4
    maps = model.eval().feature_maps(torch.randn(2, 3, 64, 64))
    assert maps["conv5"].shape == (2, 192, 7, 7)
    assert model.features(torch.randn(2, 3, 64, 64)).shape == (2, 4096)


def test_feat_dim_two_puts_embeddings_on_the_circle():
    z = build_model("small_cnn", feat_dim=2).eval()(torch.randn(5, 3, 32, 32))
    torch.testing.assert_close(z.pow(2).sum(1), torch.ones(5))


def test_small_cnn_without_batch_norm_is_batch_independent():
    torch.manual_seed(0)
    model = build_model("small_cnn", batch_norm=False).train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = torch.randn(6, 3, 32, 32)
    torch.testing.assert_close(model(x)[:2], model(x[:2]))


def test_registry_contract_and_errors():
    assert {"small_alexnet", "resnet18_cifar", "small_cnn", "conv1d"} <= set(MODELS)
    assert MODELS["conv1d"] == "alignuniform.models.conv1d:Conv1dEncoder"
    with pytest.raises(ValueError, match="unknown model 'alexnet'.*small_alexnet"):
        build_model("alexnet")
    with pytest.raises(ValueError, match="small_cnn"):
        build_model("small_cnn", depth=3)
    with pytest.raises(ValueError, match="feat_dim must be a positive int"):
        build_model("small_cnn", feat_dim=0)


def test_bad_inputs_get_clear_errors():
    model = build_model("small_cnn").eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    alex = build_model("small_alexnet", image_size=32).eval()
    with pytest.raises(ValueError, match="image_size=64"):
        alex(torch.randn(1, 3, 64, 64))
