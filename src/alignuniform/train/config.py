"""The training config: typed sections, the criteria they build, and YAML load/save.

``load_config(path, overrides)`` reads a YAML file with ``yaml.safe_load`` (no tags that
build Python objects), applies ``section.key=value`` overrides, and checks every value
before any work starts (``alignuniform._typed`` for keys, types and non-finite numbers;
``train.validation`` for values no run can use: a learning rate or decay that cannot train,
an unknown device, a queue no loss term uses). Every error is a ``ValueError`` whose message
names the key or file and says what would be accepted.

The loss modules of a run are built here and nowhere else: :meth:`TrainConfig.criterion`
(``LossCombination``, or ``QueueLoss`` with a queue) and :meth:`TrainConfig.dense_criterion`
(``DenseLossCombination``); validation builds them too, so a bad weight fails at load time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import yaml

from alignuniform import _typed
from alignuniform.dense import DenseLossCombination
from alignuniform.io import atomic_write_text
from alignuniform.losses import LossCombination
from alignuniform.shipped import resolve_recipe
from alignuniform.train.queue import QUEUE_TERMS, QueueLoss

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ScenesConfig:
    """Pre-training on scenes (``alignuniform.data.scenes``) instead of the images: the
    training set is ``n_scenes`` scenes whose objects and backgrounds come from the run's
    training images (``data.subset`` applied; never the held-out split), scene ``i`` drawn
    from ``(seed, i)``. Off while ``variant`` is null.

    Attributes:
        variant: ``"single"`` or ``"multi"`` (``data.scenes.VARIANTS``); ``None``: train on
            the images themselves.
        n_scenes: Number of training scenes.
        canvas: Scene side in pixels (>= 16). 32 for the CIFAR-10 recipe: a full-frame
            view is then the scene at its own resolution, as a CIFAR-10 image is, and the
            crop scale is a fraction of the frame, so a larger canvas only adds resampling.

    Examples:
        >>> ScenesConfig().active, ScenesConfig(variant="multi").active
        (False, True)
    """

    variant: str | None = None
    n_scenes: int = 4096
    canvas: int = 32

    @property
    def active(self) -> bool:
        """Whether training runs on scenes."""
        return self.variant is not None


@dataclass
class DataConfig:
    """What to train on and how to make positive pairs.

    Attributes:
        name: Data set name (``alignuniform.data.DATASETS``).
        root: Where the data live (directory or zip); ``None`` for generated data.
        split: Training split ("train"; STL-10's self-supervised set is "train+unlabeled").
        recipe: Two-view augmentation (``alignuniform.data.RECIPES``).
        batch_size: Global batch size (split evenly over DDP ranks).
        num_workers: DataLoader worker processes per rank.
        batched_augment: Augment whole batches on the training device instead of each image
            in the workers (much faster for small images on few CPU cores; see
            ``benchmarks/bench_data.py``).
        val_fraction: Held-out fraction of each class (``None``: the data set's default);
            evaluation rebuilds the same split from this config.
        split_seed: Seed of that split (``None``: the data set's default).
        subset: Train on a seeded random subset of this many images (``None``: all).
        kwargs: Further data-set options (e.g. ``n`` for "synthetic", ``cache_dir``).
        augment: Changes to the recipe's augmentation components
            (``{component: {param: value} | true | false}``, ``base: none``; see
            ``alignuniform.data.build_augment_recipe``); empty: the recipe as it is.
        scenes: Train on scenes pasted from these images (:class:`ScenesConfig`); off by
            default (the images themselves).
    """

    name: str = "cifar10"
    root: str | None = None
    split: str = "train"
    recipe: str = "cifar10"
    batch_size: int = 768
    num_workers: int = 4
    batched_augment: bool = False
    val_fraction: float | None = None
    split_seed: int | None = None
    subset: int | None = None
    kwargs: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)


@dataclass
class ModelConfig:
    """The encoder: a ``build_model`` name, output dimension and constructor options.

    Attributes:
        name: Model name (``alignuniform.models.MODELS``).
        feat_dim: Embedding dimension (128 in the paper).
        kwargs: Further constructor options (e.g. ``image_size: 32`` for SmallAlexNet).
        sync_bn: Convert BatchNorm to SyncBatchNorm under DDP (statistics over the global
            batch).
    """

    name: str = "small_alexnet"
    feat_dim: int = 128
    kwargs: dict = field(default_factory=dict)
    sync_bn: bool = False


def _keyed(section: str, values: object, err: ValueError) -> str:
    """A loss's message in config terms: ``"tau must be > 0"`` becomes ``"loss.tau must be
    > 0"``; a message that does not start with one of the section's keys is kept as is."""
    message = str(err)
    names = {f.name for f in dataclasses.fields(values)}  # type: ignore[arg-type]
    return f"{section}.{message}" if message.split(" ", 1)[0] in names else message


@dataclass
class LossConfig:
    """Weights and parameters of ``alignuniform.LossCombination``.

    Attributes:
        w_contrastive, tau: L_contrastive weight and temperature.
        w_align, alpha: L_align weight and exponent.
        w_uniform, t: L_uniform weight and scale.
        w_nt_xent, tau_nt_xent: SimCLR NT-Xent weight and temperature.

    Examples:
        >>> LossConfig(w_align=1.0, w_uniform=1.0).criterion()
        LossCombination(1*align(alpha=2) + 1*uniform(t=2))
        >>> LossConfig(w_contrastive=1.0).criterion(QueueConfig(size=4096))
        QueueLoss()
    """

    w_contrastive: float = 0.0
    tau: float = 0.07
    w_align: float = 1.0
    alpha: float = 2.0
    w_uniform: float = 1.0
    t: float = 2.0
    w_nt_xent: float = 0.0
    tau_nt_xent: float = 0.5

    def criterion(self, queue: QueueConfig | None = None) -> LossCombination | QueueLoss:
        """The loss module of this section: ``LossCombination``, or ``QueueLoss`` against
        the queue when ``queue.size > 0``.

        Raises:
            ValueError: A weight or scale the loss refuses, NT-Xent with a queue, or a queue
                that no term uses (the message names the key).
        """
        if queue is None or not queue.size:
            try:
                return LossCombination(**dataclasses.asdict(self))
            except ValueError as err:
                raise ValueError(f"bad loss section: {_keyed('loss', self, err)}") from err
        if self.w_nt_xent:
            raise ValueError(
                "loss.w_nt_xent cannot use a queue (NT-Xent's negatives are the batch's other "
                "views); set loss.w_nt_xent=0 or queue.size=0. Terms that use the queue: "
                + "; ".join(f"loss.{k} ({v})" for k, v in QUEUE_TERMS.items())
            )
        try:
            return QueueLoss(w_contrastive=self.w_contrastive, tau=self.tau,
                             w_align=self.w_align, alpha=self.alpha, w_uniform=self.w_uniform,
                             t=self.t, intra_batch=queue.intra_batch)
        except ValueError as err:
            raise ValueError(f"bad loss section with queue.size={queue.size}: {err}") from err


@dataclass
class QueueConfig:
    """MoCo's negatives beyond the batch: a momentum key encoder and a queue of keys.

    Attributes:
        size: K, the number of past keys held (0: no queue, in-batch negatives only). Must be
            a multiple of the global batch ``data.batch_size`` (MoCo enqueues whole batches).
        momentum: m of the key encoder's EMA ``k <- m k + (1 - m) q``, in [0, 1).
        shuffle_bn: MoCo's shuffling BN under DDP: the key encoder sees the global batch
            permuted across ranks (no effect in one process). The alternative is
            ``model.sync_bn`` (CUDA).
        intra_batch: The uniformity term also counts query-query pairs (the fork's default).
    """

    size: int = 0
    momentum: float = 0.999
    shuffle_bn: bool = False
    intra_batch: bool = True


@dataclass
class DenseConfig:
    """Dense (per-location) loss terms (``alignuniform.dense``); off while every weight is 0.

    The dense loss is ``w_align L_dense_align(alpha) + w_uniform L_dense_uniform(t) +
    w_contrastive L_dense_contrastive(tau)`` on the dense head's maps of the two views
    (needs ``model.name: dense``), mixed with the global loss of the ``loss`` section as
    ``(1 - lam) * global + lam * dense`` (DenseCL: lam = 0.5; 1: dense terms only).

    Attributes:
        w_align, alpha: Dense alignment weight and exponent.
        w_uniform, t: Dense uniformity weight and scale.
        w_contrastive, tau: Dense InfoNCE weight and temperature (DenseCL: 0.2); its
            negatives are the other images' view-2 locations of the batch, or with a queue
            (``queue.size > 0``, DenseCL) the queue of dense keys (one per past image: the
            key encoder's dense map averaged over locations), which dense uniformity then
            also uses as its bank (with the query-location pairs if ``queue.intra_batch``).
        lam: Weight of the dense loss against the global one, in [0, 1].
        scheme: How positive location pairs are found (``alignuniform.dense.PAIR_SCHEMES``):
            "geometric" (PixPro: crop geometry, bin distance below ``threshold``),
            "geometric_nearest", "feature_argmax" (DenseCL: most similar backbone
            location) or "mutual_nn" (mutual nearest neighbours, similarity >= threshold).
        threshold: The scheme's threshold (``None``: its default, PixPro's 0.7 or 0.5 for
            "mutual_nn"); "geometric_nearest" and "feature_argmax" take none.
        exclude_same_image: Dense uniformity over pairs of locations from different images
            only (without a queue).
        pair_quality_every: Every this many steps, log the precision and recall of the
            "geometric", "feature_argmax" and "mutual_nn" pairs of the step's batch against
            the crops' ground truth (``dense.pair_quality``; keys
            ``pairs_<scheme>_precision``, ``pairs_<scheme>_recall``), from the backbone maps
            the step computed anyway; 0: never.
    """

    w_align: float = 0.0
    alpha: float = 2.0
    w_uniform: float = 0.0
    t: float = 2.0
    w_contrastive: float = 0.0
    tau: float = 0.2
    lam: float = 0.5
    scheme: str = "geometric"
    threshold: float | None = None
    exclude_same_image: bool = False
    pair_quality_every: int = 0

    @property
    def active(self) -> bool:
        """Whether any dense term has a weight."""
        return any((self.w_align, self.w_uniform, self.w_contrastive))


@dataclass
class OptimConfig:
    """SGD with momentum and a step schedule (the paper's defaults).

    Attributes:
        lr: Learning rate; ``None`` means ``base_lr * batch_size / 256``.
        base_lr: Learning rate per 256 images of (global) batch.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        milestones: Epochs after which the learning rate is multiplied by ``gamma``.
        gamma: Decay factor.
    """

    lr: float | None = None
    base_lr: float = 0.12
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: list[int] = field(default_factory=lambda: [155, 170, 185])
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """Everything a training run needs; ``load_config`` builds it from YAML.

    The top-level keys are the engine's (``train.engine``): how the run executes.

    Attributes:
        data, model, loss, optim, queue: The sections above.
        dense: Dense loss terms (off by default).
        seed: Seed of initialisation, data order and augmentation.
        epochs: Number of epochs.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        amp: Mixed precision of the encoder's forward pass: "none", "bf16" or "fp16"
            ("fp16" uses a gradient scaler; the losses always run in float32).
        global_batch: Under DDP, gather embeddings from all ranks so uniformity and the
            contrastive terms see the global batch (the single-process loss exactly); the
            dense terms always see each rank's own images. Files that give it in the
            ``loss`` section (``loss.global_batch``) are read as if it were here.
        monitor_every: Call the monitor every this many epochs.
        tensorboard: Also write TensorBoard scalars to ``out_dir/tb`` (needs tensorboard).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
    seed: int = 0
    epochs: int = 200
    device: str = "auto"
    amp: str = "none"
    global_batch: bool = True
    monitor_every: int = 1
    tensorboard: bool = False

    def to_dict(self) -> dict:
        """The config as plain nested dicts (what checkpoints and config.yaml store)."""
        return dataclasses.asdict(self)

    def learning_rate(self) -> float:
        """The learning rate in use: ``optim.lr``, else the linear scaling rule."""
        if self.optim.lr is not None:
            return self.optim.lr
        return self.optim.base_lr * self.data.batch_size / 256

    def criterion(self) -> LossCombination | QueueLoss:
        """The global loss of a step: ``self.loss.criterion(self.queue)``."""
        return self.loss.criterion(self.queue)

    def dense_criterion(self) -> DenseLossCombination:
        """The dense loss of a step (``dense`` section): its terms mixed with the global
        loss of :meth:`criterion`, or with a queue the dense terms alone (the step mixes
        them with ``QueueLoss``'s terms).

        Raises:
            ValueError: A dense weight or scale the loss refuses (the message names it).
        """
        d = self.dense
        glob = None if self.queue.size else cast(LossCombination, self.loss.criterion())
        try:
            return DenseLossCombination(
                w_align=d.w_align, alpha=d.alpha, w_uniform=d.w_uniform, t=d.t,
                w_contrastive=d.w_contrastive, tau=d.tau,
                exclude_same_image=d.exclude_same_image, global_loss=glob, lam=d.lam,
                intra_batch=self.queue.intra_batch,
            )
        except ValueError as err:
            raise ValueError(f"bad dense section: {_keyed('dense', d, err)}") from err


# ---------------------------------------------------------------------------------------------
# YAML


def upgrade_config_dict(values: dict) -> dict:
    """``values`` with the keys of older files in their place: ``loss.global_batch`` is the
    top-level ``global_batch`` (a copy; ``values`` is not changed).

    Raises:
        ValueError: Both places are given.
    """
    loss = values.get("loss")
    if not (isinstance(loss, dict) and "global_batch" in loss):
        return values
    if "global_batch" in values:
        raise ValueError("loss.global_batch and global_batch are one setting (the engine's: "
                         "global_batch); give only global_batch")
    loss = dict(loss)
    return {**values, "loss": loss, "global_batch": loss.pop("global_batch")}


def config_from_dict(values: dict) -> TrainConfig:
    """Build and validate a ``TrainConfig`` from nested dicts (as in YAML or a checkpoint).

    Raises:
        ValueError: An unknown key, or a value no run could use (the message names the key).
    """
    from alignuniform.train.validation import validate  # which imports this module

    if isinstance(values, dict):
        values = upgrade_config_dict(values)
    config = _typed.from_mapping(TrainConfig, values, noun="config key")
    validate(config)
    return config


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply ``section.key=value`` overrides.

    Args:
        path: YAML file, or the name of a shipped recipe such as ``"stl10_align_uniform"``
            (``alignuniform.shipped.resolve_recipe``; ``None``: the defaults). Read with
            ``yaml.safe_load``.
        overrides: E.g. ``["loss.tau=0.2", "epochs=10"]``; values are parsed as YAML.

    Raises:
        FileNotFoundError: No file at ``path`` and no shipped recipe of that name.
        ValueError: The file is not UTF-8 YAML of plain values (a syntax error, or a tag such
            as ``!!python/object``; the message names the file and line), an unknown key
            (the message lists the valid ones) or a bad value.
        TypeError: A value of the wrong type.
    """
    raw: dict = {}
    if path is not None:
        # a file, or the name of a shipped recipe (alignuniform.shipped)
        path = resolve_recipe(path, kind="configs")
        try:
            raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err.reason})") from err
        except yaml.YAMLError as err:
            raise ValueError(f"{path}, {_typed.yaml_error(err)}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a mapping of config sections")
    for override in overrides or []:
        _typed.apply_override(raw, override)
    return config_from_dict(raw)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (readable back with ``load_config``), atomically."""
    return atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
