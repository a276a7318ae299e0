"""Image (and 1-D) encoders whose outputs lie on the unit hypersphere.

Every encoder has ``forward(x) -> (B, feat_dim)`` L2-normalised embeddings,
``features(x) -> (B, penultimate_dim)`` penultimate features and ``feature_maps(x)`` conv maps,
and attributes ``feat_dim`` and ``penultimate_dim``. Build one by name with ``build_model``.

Examples:
    >>> from alignuniform.models import build_model
    >>> model = build_model("small_alexnet", feat_dim=128)
    >>> model.feat_dim
    128
"""

from __future__ import annotations

import torch
from torch import nn

from alignuniform._registry import resolve

# values are "module:attr" so a model's module is imported only when it is built
MODELS: dict[str, str] = {
    "small_alexnet": "alignuniform.models.small_alexnet:SmallAlexNet",
    "resnet18_cifar": "alignuniform.models.resnet:ResNet18Cifar",
    "resnet50": "alignuniform.models.resnet50:ResNet50",
    "small_cnn": "alignuniform.models.small_cnn:SmallCNN",
    "conv1d": "alignuniform.models.conv1d:Conv1dEncoder",
    "dense": "alignuniform.models.dense_head:DenseEncoder",
}


def build_model(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Construct the encoder registered as ``name`` with constructor ``kwargs``.

    The weights are the architecture's own initialisation (e.g. SmallAlexNet's N(0, 0.02)),
    which is what training starts from and what a "random init" baseline must be.

    Args:
        name: One of ``MODELS`` (``"small_alexnet"``, ``"resnet18_cifar"``, ``"resnet50"``,
            ``"small_cnn"``, ``"conv1d"``).
        seed: Draw the initial weights from ``torch.manual_seed(seed)`` on a forked CPU
            random state (the caller's is left as it was), so one seed gives one model;
            ``None`` draws from the global random state.
        **kwargs: Passed to the constructor, e.g. ``feat_dim=2``.

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
        TypeError: A keyword the constructor does not take.
    """
    cls = resolve(MODELS, name, "model")
    if seed is None:
        return _construct(name, cls, kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _construct(name, cls, kwargs)


def _construct(name: str, cls: type, kwargs: dict) -> nn.Module:
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"model {name!r}: {err}") from err


__all__ = ["MODELS", "build_model"]
