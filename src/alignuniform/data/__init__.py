"""Data sets of ``(image, label)`` and the two-view recipes that make positive pairs.

Build by name through lazy registries (a module is imported only when its entry is used):

    >>> from alignuniform.data import build_dataset, build_recipe, TwoViews
    >>> root = "../shared/data/cifar10/cifar10-train-jpeg.zip"
    >>> train = build_dataset("cifar10", root, "train")  # doctest: +SKIP
    >>> pairs = TwoViews(train, build_recipe("cifar10"))  # doctest: +SKIP
    >>> test = build_dataset("cifar10", root, "val",
    ...                      transform=build_recipe("cifar10_eval"))  # doctest: +SKIP

(The CIFAR-10 lines need the data on disk, so they are not run as tests.)

Image data sets yield (C, H, W) uint8 tensors unless given ``transform=``; ``"val"`` is a
seeded, stratified hold-out of the training images where a data set has no test split here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from alignuniform._registry import resolve
from alignuniform.data.recipes import BatchAugment, RecipeSpec
from alignuniform.data.split import stratified_split
from alignuniform.data.two_views import TwoViews

# values are "module:attr" so optional dependencies load only when used
DATASETS: dict[str, str] = {
    "cifar10": "alignuniform.data.cifar10:build_cifar10",
    "cifar10_zip": "alignuniform.data.cifar10:build_cifar10_zip",
    "stl10": "alignuniform.data.stl10:build_stl10",
    "imagefolder": "alignuniform.data.image_folder:build_imagefolder",
    "synthetic": "alignuniform.data.synthetic:build_synthetic",
    "mnist1d": "alignuniform.data.mnist1d:build_dataset",
}

# a RecipeSpec (run per sample or batched) or a per-sample callable
RECIPES: dict[str, str] = {
    "stl10": "alignuniform.data.recipes:STL10",
    "stl10_eval": "alignuniform.data.recipes:STL10_EVAL",
    "cifar10": "alignuniform.data.recipes:CIFAR10",
    "cifar10_eval": "alignuniform.data.recipes:CIFAR10_EVAL",
    "imagefolder": "alignuniform.data.recipes:IMAGEFOLDER",
    "imagefolder_eval": "alignuniform.data.recipes:IMAGEFOLDER_EVAL",
    "identity": "alignuniform.data.recipes:IDENTITY",
    "mnist1d": "alignuniform.data.mnist1d:mnist1d_view",
    "mnist1d_eval": "alignuniform.data.mnist1d:mnist1d_eval",
}


def build_dataset(name: str, root: str | None, split: str, **kwargs) -> Dataset:
    """The ``split`` ("train", "val" or "test") of the data set registered as ``name``.

    Args:
        name: One of ``DATASETS``.
        root: Where the data live (a directory, or a zip for CIFAR-10); ``None`` for
            generated data sets ("synthetic", "mnist1d").
        split: "train", "val" or "test" (some data sets add more, e.g. STL-10's
            "train+unlabeled").
        **kwargs: Data-set options, e.g. ``transform``, ``val_fraction``, ``seed``,
            ``download``, ``skip_corrupt``.
    """
    builder = resolve(DATASETS, name, "dataset")
    try:
        return builder(root, split, **kwargs)
    except TypeError as err:
        raise TypeError(f"dataset {name!r}: {err}") from err


def build_run_splits(data_cfg: dict, root: str | None = None) -> tuple[Dataset, Dataset, str]:
    """``(train, held_out, held_out_split)`` of a training run's data config.

    The held-out split is "test" where the data set has one, else the seeded stratified
    "val" hold-out that training never saw; both are rebuilt with the run's own options
    (``kwargs``, ``val_fraction``, ``split_seed``), so generated sets (MNIST-1D) and
    hold-outs come out exactly as they were during training.

    Args:
        data_cfg: The ``data`` section of a run's config (``TrainConfig.to_dict()["data"]``).
        root: Overrides ``data_cfg["root"]``.
    """
    kwargs = dict(data_cfg.get("kwargs") or {})
    kwargs.update({k: data_cfg[k] for k in ("val_fraction", "split_seed")
                   if data_cfg.get(k) is not None})
    name, root = data_cfg["name"], root if root is not None else data_cfg.get("root")
    train = build_dataset(name, root, "train", **kwargs)
    try:
        return train, build_dataset(name, root, "test", **kwargs), "test"
    except ValueError:  # no test split here
        return train, build_dataset(name, root, "val", **kwargs), "val"


def build_recipe(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample augmentation registered as ``name`` (one call = one view)."""
    recipe = resolve(RECIPES, name, "recipe")
    return recipe.per_sample() if isinstance(recipe, RecipeSpec) else recipe


def build_batch_recipe(name: str) -> BatchAugment:
    """The batched executor of recipe ``name`` (for recipes defined by a ``RecipeSpec``)."""
    recipe = resolve(RECIPES, name, "recipe")
    if not isinstance(recipe, RecipeSpec):
        raise ValueError(f"recipe {name!r} has no batched form; set data.batched_augment: false")
    return recipe.batched()


__all__ = [
    "DATASETS",
    "RECIPES",
    "BatchAugment",
    "RecipeSpec",
    "TwoViews",
    "build_batch_recipe",
    "build_dataset",
    "build_recipe",
    "build_run_splits",
    "stratified_split",
]
