"""Features of a frozen encoder, and alignment and LiDAR on held-out positive pairs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from alignuniform import metrics
from alignuniform.evaluate._inputs import labels_tensor
from alignuniform.models.base import Encoder

LAYERS = ("embedding", "penultimate")


@dataclass
class Features:
    """Features of a data set through a frozen encoder, all on the CPU.

    Attributes:
        embeddings: (N, feat_dim) L2-normalised outputs of ``model(x)``.
        penultimate: (N, penultimate_dim) outputs of ``model.features(x)``, or ``None`` for a
            model without ``features``.
        labels: (N,) int64 labels as the data set gives them (-1 for unlabelled).
    """

    embeddings: Tensor
    penultimate: Tensor | None
    labels: Tensor

    def layer(self, name: str) -> Tensor:
        """The features of layer ``name`` ("embedding" or "penultimate")."""
        if name == "embedding":
            return self.embeddings
        if name == "penultimate" and self.penultimate is not None:
            return self.penultimate
        if name == "penultimate":
            raise ValueError("this model has no features() method, so no penultimate layer")
        raise ValueError(f"unknown layer {name!r}; choose one of {LAYERS}")

    def subset(self, index: Tensor) -> Features:
        """The rows ``index`` of every tensor."""
        pen = None if self.penultimate is None else self.penultimate[index]
        return Features(self.embeddings[index], pen, self.labels[index])


class Mapped(Dataset):
    """``(fn(x), label)`` for each ``(x, label)`` of ``dataset``."""

    def __init__(self, dataset: Dataset, fn: Callable[[Tensor], Tensor] | None) -> None:
        self.dataset, self.fn = dataset, fn

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x, y = self.dataset[index]
        return (x if self.fn is None else self.fn(x)), y


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def embed(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """(embedding, penultimate) of a batch, with one trunk pass for the library's encoders."""
    if isinstance(model, Encoder) and type(model).forward is Encoder.forward:
        pen = model.features(x)
        return nn.functional.normalize(model.head(pen), dim=1), pen
    pen = model.features(x) if callable(getattr(model, "features", None)) else None  # type: ignore[assignment, operator]
    return model(x), pen


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int | None = None,
            shuffle: bool = False) -> DataLoader:
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the data set is empty")
    # an own generator even when nothing is shuffled: iterating a DataLoader draws a base seed,
    # which would otherwise advance the caller's global RNG (and change a training run)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=gen)


def extract_features(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> Features:
    """Embeddings and penultimate features of every item of ``dataset``, in order.

    The encoder runs in eval mode without gradients (its mode is restored afterwards), in
    batches on ``device`` (default: where its parameters are); results are gathered on the
    CPU.

    Args:
        model: Encoder with ``forward`` (normalised embedding) and optionally ``features``.
        dataset: Items ``(x, label)`` with ``x`` ready for the model.
        batch_size: Items per forward pass.
        device: Where to run the model.
        num_workers: DataLoader workers.
        progress: Show a progress bar.
        desc: Progress bar label.
    """
    device = model_device(model, device)
    embs, pens, labels = [], [], []
    with frozen(model):
        for x, y in tqdm(make_loader(dataset, batch_size, num_workers), desc=desc,
                         disable=not progress, leave=False):
            emb, pen = embed(model, x.to(device, non_blocking=True))
            embs.append(emb.float().cpu())
            if pen is not None:
                pens.append(pen.float().cpu())
            labels.append(labels_tensor(y))
    return Features(torch.cat(embs), torch.cat(pens) if pens else None, torch.cat(labels))


def augmented_batches(
    dataset: Dataset, augment: Callable, *, views: int, batch_size: int, num_workers: int,
    seed: int, device: torch.device, shuffle: bool = False,
) -> Iterator[tuple[list[Tensor], Tensor]]:
    """``views`` independent augmentations of each batch of ``dataset``, and its labels.

    ``augment`` is a per-sample callable (run in the loader) or a ``BatchAugment`` (run on
    whole batches on ``device`` with its own generator seeded by ``seed``). The caller forks
    and seeds the global RNG for the per-sample case.
    """
    from alignuniform.data import BatchAugment

    if isinstance(augment, BatchAugment):
        gen = torch.Generator(device).manual_seed(seed)
        for x, y in make_loader(dataset, batch_size, num_workers, seed=seed, shuffle=shuffle):
            x = x.to(device)
            yield [augment(x, generator=gen) for _ in range(views)], labels_tensor(y)
        return
    many = _Views(dataset, augment, views)
    for *xs, y in make_loader(many, batch_size, num_workers, seed=seed, shuffle=shuffle):
        yield [x.to(device) for x in xs], labels_tensor(y)


class _Views(Dataset):
    """``(augment(x), ..., augment(x), label)``: ``views`` independent draws per item."""

    def __init__(self, dataset: Dataset, augment: Callable, views: int) -> None:
        self.dataset, self.augment, self.views = dataset, augment, views

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple:
        x, y = self.dataset[index]
        return (*(self.augment(x) for _ in range(self.views)), y)


def heldout_alignments_and_lidar(
    model: nn.Module,
    dataset: Dataset,
    recipe: Callable,
    *,
    seed: int = 0,
    alpha: float = 2.0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, float], dict[str, metrics.LidarState]]:
    """:func:`heldout_alignments` and, from the same pairs, each layer's LiDAR state.

    LiDAR (Thilak et al., :func:`alignuniform.metrics.lidar`) takes each item's two views as
    one class (q = 2); its state holds the features as the layer gives them (the embedding
    normalised, the penultimate layer raw) in d x d memory: ``states[layer].lidar()``.
    """
    return _heldout_pass(model, dataset, recipe, seed=seed, alpha=alpha, batch_size=batch_size,
                         device=device, num_workers=num_workers, progress=progress, lidar=True)


def heldout_alignments(
    model: nn.Module,
    dataset: Dataset,
    recipe: Callable,
    *,
    seed: int = 0,
    alpha: float = 2.0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Alignment of every layer on two independent augmentations of each item of ``dataset``.

    The augmentation draws come from generators seeded with ``seed`` inside a forked RNG, so
    the pairs are the same on every call and the caller's random state is untouched.
    Penultimate features are L2-normalised first, like the embeddings.

    Args:
        model: The encoder.
        dataset: Items ``(image, label)`` with stored (untransformed) images.
        recipe: A per-sample augmentation (``build_recipe``), or a batched one
            (``build_batch_recipe``, much faster on CPU) run on ``device``.
        seed: Seed of the augmentation draws.
        alpha: Alignment exponent.
        batch_size, device, num_workers, progress: How to run the encoder.

    Returns:
        ``{"embedding": value, "penultimate": value}`` (no penultimate for models without
        ``features``).
    """
    return _heldout_pass(model, dataset, recipe, seed=seed, alpha=alpha, batch_size=batch_size,
                         device=device, num_workers=num_workers, progress=progress,
                         lidar=False)[0]


def _heldout_pass(
    model: nn.Module, dataset: Dataset, recipe: Callable, *, seed: int, alpha: float,
    batch_size: int, device: str | torch.device | None, num_workers: int, progress: bool,
    lidar: bool,
) -> tuple[dict[str, float], dict[str, metrics.LidarState]]:
    """One pass over seeded positive pairs: each layer's alignment and, with ``lidar``, its
    LiDAR state of the (b, 2, d) views."""
    device = model_device(model, device)
    meters = {name: metrics.Alignment(alpha=alpha) for name in LAYERS}
    states: dict[str, metrics.LidarState] = {}

    def add(name: str, a: Tensor, b: Tensor) -> None:
        meters[name].update(a, b)
        if lidar:
            if name not in states:
                states[name] = metrics.LidarState(a.shape[1], device=a.device)
            states[name].update(torch.stack([a, b], 1))

    pairs = augmented_batches(dataset, recipe, views=2, batch_size=batch_size,
                              num_workers=num_workers, seed=seed, device=device)
    with torch.random.fork_rng(devices=[]), frozen(model):
        torch.manual_seed(seed)
        for (v1, v2), _ in tqdm(pairs, desc="positive pairs", disable=not progress,
                                leave=False, total=math.ceil(len(dataset) / batch_size)):  # type: ignore[arg-type]
            e1, p1 = embed(model, v1)
            e2, p2 = embed(model, v2)
            add("embedding", e1, e2)
            if p1 is not None and p2 is not None:
                add("penultimate", p1, p2)
    return {name: float(m.compute()) for name, m in meters.items() if m.count}, states


def heldout_alignment(
    model: nn.Module,
    dataset: Dataset,
    recipe: Callable,
    *,
    seed: int = 0,
    layer: str = "embedding",
    **kwargs,
) -> float:
    """Alignment of ``layer`` on held-out positive pairs; see :func:`heldout_alignments`."""
    values = heldout_alignments(model, dataset, recipe, seed=seed, **kwargs)
    if layer not in values:
        raise ValueError(f"no {layer!r} layer for this model; available: {sorted(values)}")
    return values[layer]


def random_subset(dataset: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` items (the whole set when ``n`` is None or larger)."""
    size = len(dataset)  # type: ignore[arg-type]
    if n is None or n >= size:
        return dataset
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    idx = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]
    return Subset(dataset, idx.sort().values.tolist())
