"""The training config: typed sections, their validation, and YAML load/save.

``load_config(path, overrides)`` reads a YAML file with ``yaml.safe_load`` (no tags that
build Python objects), applies ``section.key=value`` overrides, and checks every value
before any work starts: wrong keys and types, non-finite numbers, a learning rate or decay
that cannot train, an unknown device. Every error is a ``ValueError`` (or ``TypeError`` for
a wrong type) whose message names the key or file and says what would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from alignuniform._registry import resolve
from alignuniform.data import RECIPES, RecipeSpec, build_augment_recipe, build_recipe
from alignuniform.data.dense_views import DenseViewRecipe
from alignuniform.dense import PAIR_SCHEMES
from alignuniform.io import atomic_write_text
from alignuniform.losses import LossCombination
from alignuniform.shipped import resolve_recipe
from alignuniform.train.queue import QUEUE_TERMS, nearest_queue_sizes

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


@dataclass
class LossConfig:
    """Weights and parameters of ``alignuniform.LossCombination``.

    Attributes:
        w_contrastive, tau: L_contrastive weight and temperature.
        w_align, alpha: L_align weight and exponent.
        w_uniform, t: L_uniform weight and scale.
        w_nt_xent, tau_nt_xent: SimCLR NT-Xent weight and temperature.
        global_batch: Under DDP, gather embeddings from all ranks so uniformity and the
            contrastive terms see the global batch (the single-process loss exactly).
    """

    w_contrastive: float = 0.0
    tau: float = 0.07
    w_align: float = 1.0
    alpha: float = 2.0
    w_uniform: float = 1.0
    t: float = 2.0
    w_nt_xent: float = 0.0
    tau_nt_xent: float = 0.5
    global_batch: bool = True


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

    Attributes:
        data, model, loss, optim, queue: The sections above.
        dense: Dense loss terms (off by default).
        seed: Seed of initialisation, data order and augmentation.
        epochs: Number of epochs.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        amp: Mixed precision of the encoder's forward pass: "none", "bf16" or "fp16"
            ("fp16" uses a gradient scaler; the losses always run in float32).
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



# ---------------------------------------------------------------------------------------------
# validation

# SGD on these encoders diverges far below this; a larger value is a typo (1e2 for 1e-2)
MAX_LR = 10.0

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check_value(value: object, hint: object, where: str) -> object:
    """Coerce/validate one YAML value against a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = origin or hint
    if expected is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):  # type: ignore[arg-type]
        name = getattr(expected, "__name__", str(expected))
        raise ValueError(f"{where} must be {name}, got {value!r}")
    if expected is float and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if expected is list and args == (int,) and not all(isinstance(v, int) for v in value):
        raise ValueError(f"{where} must be a list of ints, got {value!r}")
    return value


def _from_dict(cls: type, values: dict, where: str = "") -> typing.Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'the config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(map(str, values)) - set(names))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; valid keys"
            f"{' in ' + where.rstrip('.') if where else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value or {}, f"{where}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _check_value(value, hint, where + name)
    return cls(**kwargs)


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
    loss = config.loss
    if loss.w_nt_xent:
        raise ValueError(
            "loss.w_nt_xent cannot use a queue (NT-Xent's negatives are the batch's other "
            "views); set loss.w_nt_xent=0 or queue.size=0. Terms that use the queue: "
            + "; ".join(f"loss.{k} ({v})" for k, v in QUEUE_TERMS.items())
        )
    if not (loss.w_contrastive or loss.w_uniform):
        raise ValueError(
            f"queue.size={queue.size} but no loss term uses negatives (loss.w_align compares "
            "positive pairs only); give a weight to a term that uses the queue: "
            + "; ".join(f"loss.{k} ({v})" for k, v in QUEUE_TERMS.items())
            + "; or set queue.size=0"
        )


def config_from_dict(values: dict) -> TrainConfig:
    """Build and validate a ``TrainConfig`` from nested dicts (as in YAML or a checkpoint).

    Raises:
        ValueError: An unknown key, or a value no run could use (the message names the key).
    """
    config = _from_dict(TrainConfig, values)
    if config.amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {config.amp!r}")
    if not _DEVICE.fullmatch(config.device):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {config.device!r}"
        )
    for name, value in (("epochs", config.epochs), ("data.batch_size", config.data.batch_size),
                        ("model.feat_dim", config.model.feat_dim),
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
    try:  # the loss checks its own weights and scales; found here, before any data loads
        LossCombination(**{k: v for k, v in dataclasses.asdict(config.loss).items()
                           if k != "global_batch"})
    except ValueError as err:
        raise ValueError(f"bad loss section: loss.{err}") from err
    _check_dense(config)
    return config


def _check_dense(config: TrainConfig) -> None:
    """Dense terms need a dense encoder, per-sample views with geometry and a scheme that
    exists; found here, before any data loads."""
    d = config.dense
    if not d.active:
        return
    for name in ("w_align", "w_uniform", "w_contrastive"):
        if getattr(d, name) < 0:
            raise ValueError(f"dense.{name} must be >= 0, got {getattr(d, name)}")
    for name in ("alpha", "t", "tau"):
        if not getattr(d, name) > 0:
            raise ValueError(f"dense.{name} must be > 0, got {getattr(d, name)}")
    if not 0 <= d.lam <= 1:
        raise ValueError(f"dense.lam must be in [0, 1] (the dense share of the loss), got {d.lam}")
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


# ---------------------------------------------------------------------------------------------
# YAML


def _yaml_error(err: yaml.YAMLError) -> str:
    """One line from a YAML error: where, and what (its str() spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "python/" in problem:
        problem += " (tags that build Python objects are refused: write plain values)"
    return where + problem


def _apply_override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ValueError(f"override {override!r} must look like section.key=value")
    *parents, leaf = key.strip().split(".")
    node = raw
    for part in parents:
        if node.get(part) is None:  # absent, or an empty section in the YAML
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ValueError(f"override {override!r}: {part} is not a section")
    try:
        node[leaf] = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"override {override!r}: not a YAML value ({_yaml_error(err)})") from err


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
            raise ValueError(f"{path}, {_yaml_error(err)}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a mapping of config sections")
    for override in overrides or []:
        _apply_override(raw, override)
    return config_from_dict(raw)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (readable back with ``load_config``), atomically."""
    return atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
