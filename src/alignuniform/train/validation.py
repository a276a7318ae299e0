"""Validation of a training config: the values no run could use, refused at load time.

``config_from_dict`` (``train.config``) calls :func:`validate` once the sections are typed;
each check names the key and says what would be accepted: a learning rate or decay that
cannot train, an unknown device, a queue size that is not a multiple of the batch, scenes
of an unknown variant, dense terms without a dense encoder or views with crop geometry.
"""

from __future__ import annotations

import math
import re

import torch

from alignuniform._registry import resolve
from alignuniform.data import RECIPES, RecipeSpec, build_augment_recipe, build_recipe
from alignuniform.data.dense_views import DenseViewRecipe
from alignuniform.data.scenes import VARIANTS
from alignuniform.dense import PAIR_SCHEMES
from alignuniform.train.config import AMP_DTYPES, TrainConfig
from alignuniform.train.queue import nearest_queue_sizes

# SGD on these encoders diverges far below this; a larger value is a typo (1e2 for 1e-2)
MAX_LR = 10.0

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check_optim(config: TrainConfig) -> None:
    optim = config.optim
    if not optim.gamma > 0:
        raise ValueError(
            f"optim.gamma must be > 0 (the factor applied to the learning rate at each "
            f"milestone; 0.1 in the paper), got {optim.gamma}"
        )
    if not 0 <= optim.momentum < 1:
        raise ValueError(f"optim.momentum must be in [0, 1), got {optim.momentum}")
    if optim.weight_decay < 0:
        raise ValueError(f"optim.weight_decay must be >= 0, got {optim.weight_decay}")
    lr = config.learning_rate()
    if not (math.isfinite(lr) and 0 < lr <= MAX_LR):
        source = (f"optim.lr={optim.lr}" if optim.lr is not None else
                  f"optim.base_lr * data.batch_size / 256 = {optim.base_lr} * "
                  f"{config.data.batch_size} / 256 = {lr:g}")
        raise ValueError(
            f"the learning rate must be in (0, {MAX_LR:g}], got {source}; the paper uses "
            "base_lr=0.12 (0.36 at batch size 768)"
        )


def _check_queue(config: TrainConfig) -> None:
    queue, batch = config.queue, config.data.batch_size
    if not 0 <= queue.momentum < 1:
        raise ValueError(
            f"queue.momentum must be in [0, 1) (the key encoder's EMA; MoCo uses 0.999), "
            f"got {queue.momentum}"
        )
    if queue.size < 0:
        raise ValueError(f"queue.size must be >= 0 (0: no queue), got {queue.size}")
    if not queue.size:
        return
    if queue.size % batch:
        below, above = nearest_queue_sizes(queue.size, batch)
        nearest = f"{below} and {above}" if below != above else f"{above}"
        raise ValueError(
            f"queue.size={queue.size} must be a multiple of the global batch "
            f"data.batch_size={batch} (MoCo enqueues whole batches); nearest valid sizes: "
            f"{nearest}"
        )


def validate(config: TrainConfig) -> None:
    """Refuse a config no run could use, before any data loads (the message names the key).

    Builds the run's criteria (``TrainConfig.criterion``, ``dense_criterion``): the losses
    check their own weights and scales.

    Raises:
        ValueError: The first problem found.
    """
    if config.amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {config.amp!r}")
    if not _DEVICE.fullmatch(config.device):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {config.device!r}"
        )
    if config.data.batch_size < 2:
        raise ValueError(
            f"data.batch_size must be >= 2 (uniformity and contrastive terms compare the rows "
            f"of a batch, and BatchNorm needs two), got {config.data.batch_size}"
        )
    for name, value in (("epochs", config.epochs), ("model.feat_dim", config.model.feat_dim),
                        ("monitor_every", config.monitor_every)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if config.data.num_workers < 0:
        raise ValueError(f"data.num_workers must be >= 0, got {config.data.num_workers}")
    if config.data.subset is not None and config.data.subset < 1:
        raise ValueError(f"data.subset must be >= 1 (or null for all), got {config.data.subset}")
    if config.optim.milestones != sorted(config.optim.milestones):
        raise ValueError(f"optim.milestones must be increasing, got {config.optim.milestones}")
    _check_optim(config)
    if config.data.augment:  # a bad component fails here, not inside a data worker
        build_augment_recipe(config.data.recipe, config.data.augment)
    _check_queue(config)
    _check_scenes(config)
    config.criterion()
    _check_dense(config)


def _check_scenes(config: TrainConfig) -> None:
    scenes = config.data.scenes
    if not scenes.active:
        return
    if scenes.variant not in VARIANTS:
        raise ValueError(f"data.scenes.variant must be one of {', '.join(sorted(VARIANTS))} "
                         f"(or null to train on the images), got {scenes.variant!r}")
    if scenes.n_scenes < 1:
        raise ValueError(f"data.scenes.n_scenes must be >= 1, got {scenes.n_scenes}")
    if scenes.canvas < 16:
        raise ValueError(f"data.scenes.canvas must be >= 16 px (32 for the cifar10 recipe's "
                         f"32 px views), got {scenes.canvas}")


def _check_dense(config: TrainConfig) -> None:
    """Dense terms need a dense encoder, per-sample views with geometry and a scheme that
    exists; found here, before any data loads."""
    d = config.dense
    if d.pair_quality_every < 0:
        raise ValueError(f"dense.pair_quality_every must be >= 0 (0: off), got "
                         f"{d.pair_quality_every}")
    if not d.active:
        if d.pair_quality_every:
            raise ValueError("dense.pair_quality_every needs dense terms (the views' crop "
                             "geometry and the backbone maps): give a dense weight, e.g. "
                             "dense.w_align: 1 with dense.lam: 0 to train the global loss "
                             "alone, or set dense.pair_quality_every: 0")
        return
    config.dense_criterion()  # the dense loss checks its weights, scales and lam
    if config.queue.size and d.exclude_same_image:
        raise ValueError("dense.exclude_same_image does not apply with a MoCo queue (dense "
                         "uniformity is then the query locations against the dense queue of "
                         "past batches' keys); set dense.exclude_same_image: false, and "
                         "queue.intra_batch: false to count the query-queue pairs only")
    if d.scheme not in PAIR_SCHEMES:
        raise ValueError(f"dense.scheme must be one of {', '.join(PAIR_SCHEMES)}, "
                         f"got {d.scheme!r}")
    if d.threshold is not None:
        if d.scheme in ("geometric_nearest", "feature_argmax"):
            raise ValueError(f"dense.scheme={d.scheme} takes no threshold; set "
                             "dense.threshold=null")
        if d.scheme == "geometric" and not d.threshold > 0:
            raise ValueError(f"dense.threshold must be > 0 for the geometric scheme (a bin "
                             f"distance over the bin diagonal; PixPro: 0.7), got {d.threshold}")
        if d.scheme == "mutual_nn" and not -1 <= d.threshold <= 1:
            raise ValueError(f"dense.threshold must be a cosine similarity in [-1, 1] for "
                             f"mutual_nn, got {d.threshold}")
    if config.model.name != "dense":
        raise ValueError(
            f"dense loss terms need an encoder with a dense head: model.name: dense (with "
            f"model.kwargs.backbone, e.g. small_cnn), got model.name={config.model.name!r}"
        )
    if config.data.batched_augment:
        raise ValueError("dense loss terms need each view's crop geometry, which only the "
                         "per-sample views carry: set data.batched_augment: false")
    spec = resolve(RECIPES, config.data.recipe, "recipe")
    if not (isinstance(spec, RecipeSpec) and spec.train):
        raise ValueError(f"dense loss terms need an image training recipe (e.g. cifar10), got "
                         f"data.recipe={config.data.recipe!r}")
    try:  # one view of a blank image: the components must carry the crop boxes through
        DenseViewRecipe(build_recipe(config.data.recipe, config.data.augment))(
            torch.zeros(3, spec.size, spec.size, dtype=torch.uint8))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"dense pairs need views made by crop, resize, horizontal flip and colour "
            f"changes only (torchvision.transforms.v2, carrying the crop boxes); "
            f"data.augment={config.data.augment} does not ({err})"
        ) from err
