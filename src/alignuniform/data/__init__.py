"""Data sets of ``(image, label)`` and the two-view recipes that make positive pairs.

Build by name through lazy registries (a module is imported only when its entry is used):

    >>> from alignuniform.data import build_dataset, build_recipe, TwoViews
    >>> root = "../shared/data/cifar10/cifar10-train-jpeg.zip"
    >>> train = build_dataset("cifar10", root, "train")  # doctest: +SKIP
    >>> pairs = TwoViews(train, build_recipe("cifar10"))  # doctest: +SKIP
    >>> test = build_dataset("cifar10", root, "val",
    ...                      transform=build_recipe("cifar10_eval"))  # doctest: +SKIP
    >>> crop_only = build_recipe("cifar10", augment={"base": "none", "crop": {"scale": [0.2, 1]}})

(The CIFAR-10 lines need the data on disk, so they are not run as tests.)

Image training recipes are presets of named augmentation components (``COMPONENTS``: crop,
flip, color_jitter, color_drop, rotation, gaussian_blur, sobel, gaussian_noise, cutout);
``augment=`` (a config's ``data.augment``) switches and parameterises them.

Image data sets yield (C, H, W) uint8 tensors unless given ``transform=``; ``"val"`` is a
seeded, stratified hold-out of the training images where a data set has no test split here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import torch
from torch.utils.data import Dataset

from alignuniform._registry import resolve
from alignuniform.data.augment import COMPONENTS, AugmentRecipe, BatchAugment, parse_augment
from alignuniform.data.recipes import RecipeSpec
from alignuniform.data.split import SplitNotAvailable, stratified_split
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


def build_dataset(name: str, root: str | None, split: str, *, progress: bool = True,
                  **kwargs) -> Dataset:
    """The ``split`` ("train", "val" or "test") of the data set registered as ``name``.

    Args:
        name: One of ``DATASETS``.
        root: Where the data live (a directory, or a zip for CIFAR-10); ``None`` for
            generated data sets ("synthetic", "mnist1d").
        split: "train", "val" or "test" (some data sets add more, e.g. STL-10's
            "train+unlabeled").
        progress: Show a progress bar where the data set takes long to load (decoding a
            zip); ignored by the others.
        **kwargs: Data-set options, e.g. ``transform``, ``val_fraction``, ``seed``,
            ``download``, ``skip_corrupt``.

    Raises:
        ValueError: Unknown data set or option (the message lists the valid ones).
        SplitNotAvailable: The data on disk have no such split.
    """
    builder = resolve(DATASETS, name, "dataset")
    signature = inspect.signature(builder)
    if "progress" in signature.parameters:
        kwargs["progress"] = progress
    try:  # options come from configs and command lines: a wrong one is an input error
        signature.bind(root, split, **kwargs)
    except TypeError as err:
        options = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
        raise ValueError(f"dataset {name!r}: {err}; its options: {', '.join(options)}") from None
    return builder(root, split, **kwargs)


def run_dataset_kwargs(data_cfg: Mapping) -> dict:
    """The ``build_dataset`` options of a run's ``data`` config: its ``kwargs`` with the
    split options ``val_fraction`` and ``split_seed`` where set (``None``: the data set's
    defaults), so a held-out split is rebuilt exactly as training drew it.

    >>> run_dataset_kwargs({"kwargs": {"n": 80}, "val_fraction": 0.2, "split_seed": None})
    {'n': 80, 'val_fraction': 0.2}
    """
    kwargs = dict(data_cfg.get("kwargs") or {})
    kwargs.update({k: data_cfg[k] for k in ("val_fraction", "split_seed")
                   if data_cfg.get(k) is not None})
    return kwargs


def build_run_splits(data_cfg: dict, root: str | None = None, *,
                     progress: bool = True) -> tuple[Dataset, Dataset, str]:
    """``(train, held_out, held_out_split)`` of a training run's data config.

    The held-out split is "test" where the data on disk have one (CIFAR-10's torchvision
    files or a ``cifar10-test-jpeg.zip`` beside the training zip, an ImageFolder ``test/``
    folder...), else "val": an ImageFolder ``val/`` folder or the seeded stratified hold-out
    that training never saw. Both are rebuilt with the run's own options
    (``kwargs``, ``val_fraction``, ``split_seed``), so generated sets (MNIST-1D) and
    hold-outs come out exactly as they were during training.

    Args:
        data_cfg: The ``data`` section of a run's config (``TrainConfig.to_dict()["data"]``).
        root: Overrides ``data_cfg["root"]``.
        progress: Progress bars while loading (see ``build_dataset``).
    """
    kwargs = run_dataset_kwargs(data_cfg)
    name, root = data_cfg["name"], root if root is not None else data_cfg.get("root")
    kwargs["progress"] = progress
    train = build_dataset(name, root, "train", **kwargs)
    try:
        return train, build_dataset(name, root, "test", **kwargs), "test"
    except SplitNotAvailable:  # only this: a broken test split must not pass for a missing one
        return train, build_dataset(name, root, "val", **kwargs), "val"


def build_augment_recipe(name: str, augment: Mapping | None = None) -> AugmentRecipe:
    """The components of training recipe ``name`` changed by a config's ``augment`` mapping.

    Cheap and without side effects: call it when a config is read to reject a bad
    ``data.augment`` before any data loading.

    Args:
        name: An image training recipe of ``RECIPES`` (e.g. "cifar10").
        augment: ``{component: {param: value} | true | false}``, optionally ``base: none``
            (see ``alignuniform.data.augment.parse_augment``); ``None``: the preset.

    Raises:
        ValueError: Unknown recipe, component or parameter (listing the valid ones), a bad
            value, or a component that cannot apply to the recipe's data.
    """
    recipe = resolve(RECIPES, name, "recipe")
    if not isinstance(recipe, RecipeSpec):
        if augment:
            parse_augment(augment)  # unknown names and parameters first
        kind = "1-D signals" if "mnist1d" in getattr(recipe, "__module__", "") else "its own views"
        image = sorted(k for k in RECIPES if not k.endswith("_eval") and k != "identity"
                       and isinstance(resolve(RECIPES, k, "recipe"), RecipeSpec))
        first = next((k for k in augment or {} if k != "base"), None)
        what = f"component {first!r}" if first else "augmentation components"
        raise ValueError(
            f"{what} cannot apply to recipe {name!r}: it makes {kind}, and the components "
            f"work on 2-D images (recipes {', '.join(image)}); drop data.augment"
        )
    if not recipe.train:
        raise ValueError(f"recipe {name!r} is a deterministic evaluation transform; "
                         "data.augment needs a training recipe (e.g. 'cifar10')")
    return recipe.augment_recipe(augment)


def build_recipe(
    name: str, augment: Mapping | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-sample augmentation registered as ``name`` (one call = one view), its
    components changed by ``augment`` when given (see :func:`build_augment_recipe`)."""
    if augment:
        return build_augment_recipe(name, augment).per_sample()
    recipe = resolve(RECIPES, name, "recipe")
    return recipe.per_sample() if isinstance(recipe, RecipeSpec) else recipe


def build_batch_recipe(name: str, augment: Mapping | None = None) -> BatchAugment:
    """The batched executor of recipe ``name`` (for recipes defined by a ``RecipeSpec``),
    its components changed by ``augment`` when given (see :func:`build_augment_recipe`)."""
    recipe = resolve(RECIPES, name, "recipe")
    if not isinstance(recipe, RecipeSpec):
        raise ValueError(f"recipe {name!r} has no batched form; set data.batched_augment: false")
    return build_augment_recipe(name, augment).batched() if augment else recipe.batched()


__all__ = [
    "COMPONENTS",
    "DATASETS",
    "RECIPES",
    "AugmentRecipe",
    "BatchAugment",
    "RecipeSpec",
    "SplitNotAvailable",
    "TwoViews",
    "build_augment_recipe",
    "build_batch_recipe",
    "build_dataset",
    "build_recipe",
    "build_run_splits",
    "run_dataset_kwargs",
    "stratified_split",
]
