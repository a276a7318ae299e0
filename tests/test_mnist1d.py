"""Tests for alignuniform.data.mnist1d (local MNIST-1D) and alignuniform.models.conv1d."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch

from alignuniform.data.mnist1d import MNIST1D, build_dataset, mnist1d_eval, mnist1d_view
from alignuniform.models.conv1d import Conv1dEncoder


@pytest.fixture(scope="module")
def small_sets():
    kw = {"n_train": 200, "n_test": 100, "n_val": 50, "seed": 3}
    return {split: build_dataset(None, split, **kw) for split in ("train", "val", "test")}


def test_splits_have_requested_sizes_and_shapes(small_sets):
    assert [len(small_sets[s]) for s in ("train", "val", "test")] == [200, 50, 100]
    x, y = small_sets["train"][0]
    assert x.shape == (1, 40) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 10
    labels = torch.cat([small_sets[s].labels for s in small_sets])
    assert set(labels.tolist()) == set(range(10))


def test_splits_are_disjoint(small_sets):
    rows = {s: {tuple(r.tolist()) for r in small_sets[s].data[:, 0]} for s in small_sets}
    assert not rows["train"] & rows["test"]
    assert not rows["train"] & rows["val"]
    assert not rows["val"] & rows["test"]


def test_generation_is_seeded_and_matches_the_package():
    from mnist1d.data import get_dataset_args, make_dataset

    a = build_dataset(None, "test", n_train=90, n_test=30, n_val=0, seed=5)
    b = build_dataset(None, "test", n_train=90, n_test=30, n_val=0, seed=5)
    c = build_dataset(None, "test", n_train=90, n_test=30, n_val=0, seed=6)
    assert torch.equal(a.data, b.data) and not torch.equal(a.data, c.data)
    # independent reference: the package's own generator with the same settings
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 120, 0.75, 5
    ref = make_dataset(args)
    np.testing.assert_allclose(a.data[:, 0].numpy(), ref["x_test"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a.labels.numpy(), ref["y_test"])


def test_generation_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    MNIST1D("train", n_train=70, n_test=10, n_val=0, seed=11)
    assert (np.random.rand(), random.random()) == expected


def test_generation_does_not_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("MNIST-1D generation tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert len(MNIST1D("train", n_train=40, n_test=20, n_val=0, seed=12)) == 40


@pytest.mark.parametrize(
    "kwargs, error",
    [({"split": "dev"}, ValueError), ({"n_train": -1}, TypeError), ({"n_test": 2.5}, TypeError),
     ({"split": "val", "n_val": 0}, ValueError)],
)
def test_bad_arguments_are_rejected(kwargs, error):
    split = kwargs.pop("split", "train")
    with pytest.raises(error):
        MNIST1D(split, **kwargs)


def test_build_dataset_rejects_unknown_options():
    from alignuniform.data import build_dataset as build_registered

    with pytest.raises(ValueError, match=r"dataset 'mnist1d': .*'n_trian'; its options: "
                                         r"n_train, n_test, n_val, seed, transform"):
        build_registered("mnist1d", None, "train", n_trian=10)


def test_view_is_seeded_shape_preserving_and_random(small_sets):
    x = small_sets["train"][0][0]
    torch.manual_seed(0)
    v1, v2 = mnist1d_view(x), mnist1d_view(x)
    torch.manual_seed(0)
    assert torch.equal(mnist1d_view(x), v1)
    assert v1.shape == x.shape and v1.dtype == x.dtype
    assert not torch.equal(v1, v2)
    assert mnist1d_view(x[0]).shape == (40,)


def test_view_with_no_nuisance_is_identity(small_sets):
    x = small_sets["train"][1][0]
    out = mnist1d_view(x, max_shift=0, crop_scale=(1.0, 1.0), shear=0.0, amp_range=(1.0, 1.0),
                       noise_std=0.0)
    torch.testing.assert_close(out, x)


def test_view_shift_is_circular(small_sets):
    x = small_sets["train"][2][0]
    torch.manual_seed(1)
    out = mnist1d_view(x, max_shift=5, crop_scale=(1.0, 1.0), shear=0.0, amp_range=(1.0, 1.0),
                       noise_std=0.0)
    shifts = [k for k in range(-5, 6) if torch.allclose(out, torch.roll(x, k, dims=-1))]
    assert len(shifts) == 1


def test_view_keeps_views_of_a_sequence_closer_than_other_sequences(small_sets):
    data = small_sets["train"].data[:64]
    torch.manual_seed(2)
    v1 = torch.stack([mnist1d_view(x, max_shift=0) for x in data]).flatten(1)
    v2 = torch.stack([mnist1d_view(x, max_shift=0) for x in data]).flatten(1)
    dist = torch.cdist(v1, v2)
    assert (dist.diagonal() < dist.mean(dim=1)).float().mean() > 0.9


def test_eval_transform_is_the_identity(small_sets):
    x = small_sets["test"][0][0]
    assert mnist1d_eval(x) is x
    with_transform = build_dataset(None, "test", n_train=200, n_test=100, n_val=50, seed=3,
                                   transform=lambda t: 2 * t)
    torch.testing.assert_close(with_transform[0][0], 2 * x)


def test_view_rejects_bad_input():
    with pytest.raises(TypeError, match="floating"):
        mnist1d_view(torch.zeros(40, dtype=torch.long))
    with pytest.raises(ValueError, match="crop_scale"):
        mnist1d_view(torch.zeros(40), crop_scale=(0.5, 1.5))


def test_conv1d_encoder_outputs(small_sets):
    torch.manual_seed(0)
    model = Conv1dEncoder(feat_dim=2, in_length=40).eval()
    x = small_sets["train"].data[:8]
    z = model(x)
    assert z.shape == (8, 2) and model.feat_dim == 2
    torch.testing.assert_close(z.norm(dim=1), torch.ones(8))
    assert model.features(x).shape == (8, model.penultimate_dim)
    assert list(model.feature_maps(x)) == ["conv1", "conv2", "conv3"]
    torch.testing.assert_close(model(x[:, 0]), z)  # (B, L) is accepted as one channel


def test_conv1d_encoder_trains(small_sets):
    torch.manual_seed(0)
    model = Conv1dEncoder(feat_dim=8, width=8, hidden_dim=16)
    x = small_sets["train"].data[:32]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    target = torch.nn.functional.normalize(torch.randn(32, 8), dim=1)
    losses = []
    for _ in range(20):
        loss = (model(x) - target).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_conv1d_encoder_rejects_bad_shapes_and_arguments():
    model = Conv1dEncoder(feat_dim=4)
    with pytest.raises(ValueError, match=r"\(B, 1, 40\)"):
        model(torch.zeros(2, 1, 39))
    with pytest.raises(ValueError, match="feat_dim"):
        Conv1dEncoder(feat_dim=0)
    with pytest.raises(ValueError, match="in_length"):
        Conv1dEncoder(in_length=4)


def test_registries_resolve_mnist1d_pieces():
    from alignuniform.data import RECIPES, build_recipe
    from alignuniform.data import build_dataset as build_registered
    from alignuniform.models import build_model

    assert isinstance(build_model("conv1d", feat_dim=3), Conv1dEncoder)
    assert build_recipe("mnist1d") is mnist1d_view
    assert "mnist1d_eval" in RECIPES and build_recipe("mnist1d_eval") is mnist1d_eval
    test = build_registered("mnist1d", None, "test", n_train=30, n_test=20, seed=4)
    torch.testing.assert_close(test.data, build_dataset(None, "test", n_train=30, n_test=20,
                                                        seed=4).data)
