"""The training loop: wiring of data, model, step and optimiser; checkpoints and resume, DDP.

One function, ``train(config, out_dir)``, runs any point of the paper's loss space
(contrastive / align / uniform / NT-Xent, with weights) on an image data set, in one process
or under ``torchrun`` with DistributedDataParallel. The run directory holds:

- ``config.yaml``: the full config;
- ``checkpoint.pt``: the latest state (model, optimizer, scheduler, RNG, config, epoch,
  step, and with a queue the key encoder and the queue with its pointer, with dense terms
  also the dense queue), written
  atomically at the end of every epoch;
- ``log.jsonl``: one JSON object per step (step, epoch, lr, loss and each loss term);
- ``epochs.jsonl``: one JSON object per epoch (means of the terms over the steps that
  logged them, images_per_s, wall_s, and what the ``monitor`` returned, each key prefixed
  ``heldout_``);
- ``.lock``: locked by the process running there (``train.run_dir.lock_run_dir``), so a
  second ``train`` on the same directory is refused at once, naming the first.

What one step computes is a ``train.steps.TrainStep`` chosen once when the run starts
(:func:`build_step`): plain, MoCo queue, dense, or dense with a queue.

Everything is checked before the data load: the directory is writable, the device exists,
the checkpoint to resume is readable and its config fits. Files are written atomically
(``alignuniform.io``); the logs are strict JSON lines.

With a ``dense`` section (any dense weight > 0) each item carries two views with their crop
geometry and the step's loss is ``train.dense_step.DenseStep``'s: global terms on the
embeddings mixed with dense terms on the dense head's maps; the dense terms and the number
of positive location pairs are logged with the others (and, every
``dense.pair_quality_every`` steps, each pair scheme's precision and recall).

With ``data.scenes`` the training set is scenes pasted from the training images
(``data.scenes.SceneDataset``, generated once from ``(seed, index)``), not the images.

Exact resume: the data order and every augmentation draw of an epoch are functions of
``(seed, epoch, rank)`` only (the sampler, the DataLoader generator, and the global RNGs are
seeded at the start of each epoch, ``train.rng``), so continuing from the last epoch
checkpoint after a ``kill -9`` reproduces an uninterrupted run's weights exactly on CPU.

With ``queue.size > 0`` each step is MoCo's: an EMA step of the key encoder, queries
``q = model(view1)`` and keys ``k = key_encoder(view2)`` (no gradient), the loss of
``train.queue.QueueLoss`` against the queue as it was before the step, an optimizer step, and
then the global batch of keys enqueued (``train.queue.MomentumQueue``). With dense terms
too, the step is DenseCL's (``train.dense_step.DenseQueueStep``): the key encoder also gives
view 2's dense maps, and one dense key per image goes into a second queue of the same length.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from alignuniform.checkpoint import save_checkpoint
from alignuniform.data import (
    TwoViews,
    build_batch_recipe,
    build_dataset,
    build_recipe,
    run_dataset_kwargs,
)
from alignuniform.data.scenes import SceneDataset, pool_tensors
from alignuniform.devices import check_device
from alignuniform.distributed import (
    DistributedContext,
    barrier,
    cleanup,
    init_from_env,
    is_distributed,
)
from alignuniform.io import append_jsonl
from alignuniform.losses import LossCombination
from alignuniform.models import build_model
from alignuniform.models.dense_head import DenseEncoder
from alignuniform.train.config import (
    AMP_DTYPES,
    DataConfig,
    TrainConfig,
    save_config,
)
from alignuniform.train.dense_step import DenseQueueStep, DenseStep, dense_views
from alignuniform.train.queue import MomentumQueue, QueueLoss
from alignuniform.train.rng import epoch_seed, rng_state, seed_all, set_rng_state
from alignuniform.train.run_dir import lock_run_dir, resume_state, trim_jsonl
from alignuniform.train.steps import (
    BatchAugment,
    PlainStep,
    QueueStep,
    StepContext,
    TrainStep,
)


def build_train_set(data: DataConfig, seed: int, *, progress: bool = True) -> Dataset:
    """The training set (untransformed) of a data config: its training images, subset
    applied, or with ``data.scenes`` the scenes built from those images, seeded by ``seed``
    (``progress``: a bar while a zip is decoded)."""
    dataset = build_dataset(data.name, data.root, data.split, progress=progress,
                            **run_dataset_kwargs(vars(data)))
    if data.subset is not None:
        if not 0 < data.subset <= len(dataset):  # type: ignore[arg-type]
            raise ValueError(f"data.subset must be in [1, {len(dataset)}], got {data.subset}")  # type: ignore[arg-type]
        generator = torch.Generator().manual_seed(seed)
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=generator)[: data.subset])  # type: ignore[arg-type]
    if data.scenes.active:
        return _train_scenes(dataset, data, seed)
    return dataset


def _train_scenes(images: Dataset, data: DataConfig, seed: int) -> SceneDataset:
    """``data.scenes`` scenes from the training images, generated once (scene ``i`` is a
    function of ``(seed, i)``: the same in every epoch, worker and resumed run)."""
    s = data.scenes
    try:
        pool, labels, num_classes = pool_tensors(images)
    except ValueError as err:
        raise ValueError(f"data.scenes: {err}; set data.scenes.variant: null to train on "
                         f"data.name={data.name!r} itself") from err
    return SceneDataset(pool, labels, s.n_scenes, cast(str, s.variant), canvas=s.canvas,
                        num_classes=num_classes, seed=seed).cache()


def _warn_if_queue_outgrows_epoch(config: TrainConfig, per_epoch: int) -> None:
    """Warn when the queue holds more keys than an epoch enqueues: it then repeats images of
    older epochs, and its first epochs draw negatives from its random initial vectors."""
    size, batch = config.queue.size, config.data.batch_size
    if size <= per_epoch:
        return
    half = max(batch, per_epoch // 2 // batch * batch)  # a valid size: a multiple of the batch
    warnings.warn(
        f"queue.size={size} is larger than the {per_epoch} keys an epoch enqueues "
        f"({per_epoch // batch} batches of {batch}): for the first "
        f"{math.ceil(size / per_epoch)} epochs part of the queue is its random initial "
        "vectors, and then it holds several keys of each image; MoCo's queue is a fraction "
        f"of the data set (e.g. queue.size={half})",
        stacklevel=3,
    )


def _build_loader(config: TrainConfig, ctx: DistributedContext, progress: bool
                  ) -> tuple[DataLoader, DistributedSampler, torch.Generator, BatchAugment | None]:
    """This rank's loader of the training set, its sampler and generator (seeded per epoch),
    and the batch augmentation when the views are made on the device."""
    data = config.data
    images = build_train_set(data, config.seed, progress=progress)
    batch_aug = (build_batch_recipe(data.recipe, data.augment) if data.batched_augment
                 else None)
    # dense terms (train/dense_step.py): per-sample views with their crop geometry
    dataset = (dense_views(images, data) if config.dense.active
               else images if batch_aug
               else TwoViews(images, build_recipe(data.recipe, data.augment)))
    # a DistributedSampler also with one process: global batch b of a K-process run is
    # then exactly batch b of the single-process run (same permutation, interleaved)
    sampler: DistributedSampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
        seed=config.seed, drop_last=True)
    generator = torch.Generator()
    loader = DataLoader(
        dataset, batch_size=data.batch_size // ctx.world_size, sampler=sampler,
        num_workers=data.num_workers, drop_last=True, generator=generator,
        pin_memory=ctx.device.type == "cuda",
    )
    if len(loader) == 0:
        raise ValueError(
            f"data.batch_size={data.batch_size} exceeds the {len(dataset)} training images"  # type: ignore[arg-type]
        )
    return loader, sampler, generator, batch_aug


def _build_model(config: TrainConfig, ctx: DistributedContext) -> tuple[nn.Module, nn.Module]:
    """The encoder on the run's device, and what runs its forward pass (itself, or its DDP
    wrapper)."""
    # seeded on its own: the same on every rank, and what a random-init baseline with
    # this seed evaluates (alignuniform.evaluate.evaluate_checkpoint(random_init=True))
    model = build_model(config.model.name, feat_dim=config.model.feat_dim,
                        seed=config.seed, **config.model.kwargs).to(ctx.device)
    if ctx.world_size > 1 and config.model.sync_bn:
        if ctx.device.type != "cuda":
            raise ValueError(
                "model.sync_bn needs CUDA (PyTorch's SyncBatchNorm is GPU-only); on CPU "
                "set model.sync_bn=false or use a BatchNorm-free model (e.g. small_cnn "
                "with model.kwargs.batch_norm=false)"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net: nn.Module = model
    if ctx.world_size > 1:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return model, net


class _Run:
    """The state of one training process (model, optimiser, data, logs)."""

    def __init__(self, config: TrainConfig, out_dir: Path, ctx: DistributedContext,
                 progress: bool = True) -> None:
        self.config, self.out_dir, self.ctx = config, out_dir, ctx
        self.main = ctx.rank == 0
        data = config.data
        if data.batch_size % ctx.world_size:
            raise ValueError(
                f"data.batch_size={data.batch_size} must be divisible by the number of "
                f"processes ({ctx.world_size})"
            )
        seed_all(config.seed)  # whatever the data set draws, it draws the same on every rank
        self.loader, self.sampler, self.generator, batch_aug = _build_loader(
            config, ctx, progress=progress and self.main)
        model, self.net = _build_model(config, ctx)
        self.model = model
        self.mq: MomentumQueue | None = None
        if config.queue.size:
            _warn_if_queue_outgrows_epoch(config, len(self.loader) * data.batch_size)
            # with dense terms, also DenseCL's queue of dense keys
            dense_dim = (cast(DenseEncoder, model).dense_dim if config.dense.active
                         else None)
            self.mq = MomentumQueue(model, config.queue.size, config.model.feat_dim,
                                    config.queue.momentum, seed=config.seed,
                                    dense_dim=dense_dim)
        context = StepContext(self.net, model, ctx.device, AMP_DTYPES[config.amp],
                              config.global_batch, config.seed)
        self.step_kind = build_step(config, context, self.mq, batch_aug)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate(),
                                         momentum=config.optim.momentum,
                                         weight_decay=config.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=config.optim.milestones, gamma=config.optim.gamma
        )
        if config.amp == "fp16" and ctx.device.type != "cuda":
            raise ValueError("amp=fp16 needs CUDA; use amp=bf16 or amp=none on CPU")
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16")
        self.epoch, self.step = 0, 0

    # -- state ----------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            # key encoder (key_encoder.*), queue and its pointer (ptr)
            **({"momentum_queue": self.mq.state_dict()} if self.mq is not None else {}),
        }

    def restore(self, state: dict) -> None:
        """Continue from ``state`` (checked by ``run_dir.resume_state``)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.mq is not None:
            self.mq.load_state_dict(state["momentum_queue"])
        set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    # -- one step and one epoch -------------------------------------------------------------

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimiser step on a loader batch: ``[images, labels]``, or the dense recipe's
        dict of views and their geometry."""
        out = self.step_kind.loss(batch, self.step)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss is {loss.item()} at step {self.step + 1}; lower the learning rate "
                "(optim.lr) or use amp=none"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step_kind.after_step()
        return {name: value.item() for name, value in out.items()}

    def run_epoch(self, writer, progress: bool) -> dict:
        self.epoch += 1
        seed = epoch_seed(self.config.seed, self.epoch, self.ctx.rank)
        seed_all(seed)
        self.sampler.set_epoch(self.epoch)
        self.generator.manual_seed(seed)
        self.net.train()
        lr = self.optimizer.param_groups[0]["lr"]
        # terms logged on some steps only (dense.pair_quality_every) average over those
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        start, n_images = time.perf_counter(), 0
        bar = tqdm(self.loader, desc=f"epoch {self.epoch}/{self.config.epochs}",
                   disable=not (progress and self.main), leave=False)
        for batch in bar:
            terms = self.train_step(batch)
            self.step += 1
            n_images += self.config.data.batch_size
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            if self.main:
                record = {"step": self.step, "epoch": self.epoch, "lr": lr, **terms}
                append_jsonl(self.out_dir / "log.jsonl", record)
                if writer is not None:
                    for name, value in terms.items():
                        writer.add_scalar(f"train/{name}", value, self.step)
                rate = n_images / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix({**{k: f"{v:.4f}" for k, v in terms.items()},
                                 "img/s": f"{rate:.0f}"})
        wall = time.perf_counter() - start
        self.scheduler.step()
        return {"epoch": self.epoch, "lr": lr, **{k: v / counts[k] for k, v in sums.items()},
                "images_per_s": n_images / wall, "wall_s": wall}


def build_step(config: TrainConfig, context: StepContext, mq: MomentumQueue | None,
               batch_aug: Callable[[torch.Tensor], torch.Tensor] | None) -> TrainStep:
    """The kind of step a config trains with (plain, queue, dense, dense + queue), with the
    criterion ``config`` builds; ``mq`` is the run's key encoder and queue exactly when
    ``config.queue.size > 0``."""
    if mq is None:
        if config.dense.active:
            return DenseStep(context, config)
        return PlainStep(context, cast(LossCombination, config.criterion()), batch_aug)
    queue_loss = cast(QueueLoss, config.criterion())
    if config.dense.active:
        return DenseQueueStep(context, config, mq, queue_loss)
    return QueueStep(context, queue_loss, mq, config.queue.shuffle_bn, batch_aug)


def _summary_writer_class() -> type:
    """TensorBoard's SummaryWriter, or a clear error before any work when it is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError(
            "tensorboard=true needs the tensorboard package: "
            "pip install 'alignuniform[tensorboard]'"
        ) from err
    return SummaryWriter


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    monitor: Callable[[nn.Module, int], dict] | None = None,
    progress: bool = True,
) -> Path:
    """Train an encoder as ``config`` says and return the run directory ``out_dir``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this joins the process group, wraps the model in
    DistributedDataParallel, splits each global batch over the ranks, and (with
    ``config.global_batch``) computes the loss on the gathered global batch; only rank 0
    writes logs and checkpoints.

    ``out_dir`` is locked (``alignuniform.io.RunLock``) for the run's life, and checked
    for writing, before any data load; temporary files a killed save left there are removed.

    Args:
        config: The run's ``TrainConfig``.
        out_dir: Run directory (created). It must not hold a checkpoint unless ``resume``.
        resume: Continue from ``out_dir/checkpoint.pt`` (start fresh if there is none),
            loaded on the CPU whatever the run's device.
        monitor: ``monitor(model, epoch) -> dict`` called on rank 0 after every
            ``config.monitor_every`` epochs with the bare model in eval mode (e.g.
            ``alignuniform.evaluate.make_monitor(...)``); its numbers go into
            ``epochs.jsonl`` with keys prefixed ``heldout_`` (e.g. ``heldout_align``); a
            NaN or infinite value is stored as null (strict JSON).
        progress: Show a progress bar (each loss term and images/s).

    Returns:
        ``Path(out_dir)``.

    Raises:
        alignuniform.io.RunLockedError: Another process is running in ``out_dir``; the
            message names it.
        ValueError: ``out_dir`` is not a writable folder, already holds a run (without
            ``resume``), or its checkpoint does not fit ``config``; the device is not here;
            ``log.jsonl``/``epochs.jsonl`` has a damaged line other than a partial last one.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (see load_config), got {type(config)}")
    out_dir = Path(out_dir)
    writer_class = _summary_writer_class() if config.tensorboard else None
    if config.device != "auto":
        check_device(config.device)
    owns_group = not is_distributed()
    ctx = init_from_env(config.device)
    lock = None
    try:
        if ctx.rank == 0:  # the only writer; checked before any data load
            # held until this run ends: a second process on out_dir is refused at once
            lock = lock_run_dir(out_dir)
        ckpt_path = out_dir / "checkpoint.pt"
        if ckpt_path.exists() and not resume:
            raise ValueError(
                f"{out_dir} already holds a run (checkpoint.pt); pass --resume to continue it "
                "or choose a new --out"
            )
        # read and checked before the data load: a damaged or foreign checkpoint, or a
        # damaged log, fails fast
        state = resume_state(ckpt_path, config) if resume and ckpt_path.exists() else None
        if ctx.rank == 0:
            trim_jsonl(out_dir / "log.jsonl", "step", int(state["step"]) if state else 0)
            trim_jsonl(out_dir / "epochs.jsonl", "epoch", int(state["epoch"]) if state else 0)
        run = _Run(config, out_dir, ctx, progress)
        if state is not None:
            run.restore(state)
        writer = None
        if run.main:
            save_config(config, out_dir / "config.yaml")
            writer = writer_class(str(out_dir / "tb")) if writer_class else None
        try:
            while run.epoch < config.epochs:
                summary = run.run_epoch(writer, progress)
                if run.main:
                    if monitor is not None and run.epoch % config.monitor_every == 0:
                        run.model.eval()  # run_epoch puts it back in train mode
                        # prefixed: a monitor's "align" is held-out, the epoch's is training
                        found = monitor(run.model, run.epoch)
                        summary.update({f"heldout_{k}": _json_number(v)
                                        for k, v in found.items()})
                    append_jsonl(out_dir / "epochs.jsonl", summary)
                    if progress:
                        tqdm.write(" ".join(f"{k}={_fmt(v)}" for k, v in summary.items()))
                    save_checkpoint(ckpt_path, run.state())
                barrier()
        finally:
            if writer is not None:
                writer.close()
    finally:
        if lock is not None:
            lock.release()
        if owns_group:
            cleanup()
    return out_dir


def _json_number(value: object) -> object:
    """A monitor's NaN or infinity as None: the logs are strict JSON, and a bad metric
    should not stop the run (the training loss itself is checked in ``train_step``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
