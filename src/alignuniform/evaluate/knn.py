"""k-nearest-neighbour classification of features, chunked so memory stays bounded."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alignuniform.evaluate._inputs import check_features, check_labels, check_pair


def _topk_similar(
    queries: Tensor, refs: Tensor, k: int, ref_chunk: int
) -> tuple[Tensor, Tensor]:
    """Top-k cosine similarities of each query over ``refs``, nearest first.

    One reference chunk at a time; each chunk's top-k are kept as candidates and merged
    only once they fill a chunk's width, so memory stays at about two similarity blocks and
    small chunks do not pay a merge per block.
    """
    sims: list[Tensor] = []
    idxs: list[Tensor] = []
    width = 0
    for start in range(0, refs.shape[0], ref_chunk):
        block = queries @ refs[start : start + ref_chunk].T
        s, i = block.topk(min(k, block.shape[1]), dim=1)
        sims.append(s)
        idxs.append(i + start)
        width += s.shape[1]
        if width >= max(ref_chunk, 4 * k) and len(sims) > 1:
            s, pos = torch.cat(sims, dim=1).topk(k, dim=1)
            sims, idxs, width = [s], [torch.cat(idxs, dim=1).gather(1, pos)], k
    s, pos = torch.cat(sims, dim=1).topk(k, dim=1)  # sorted: rank 0 is the nearest
    return s, torch.cat(idxs, dim=1).gather(1, pos)


def knn_predict(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    *,
    k: int = 5,
    temperature: float | None = None,
    chunk_size: int = 4096,
    num_classes: int | None = None,
) -> Tensor:
    """Predicted labels of ``test_x`` by k-NN over ``train_x`` with cosine similarity.

    With ``temperature=None``: majority vote of the k nearest (the paper's 5-NN); ties go to
    the tied class holding the nearest neighbour. With a temperature T: each neighbour votes
    ``exp(similarity / T)`` (Wu et al., 2018), the usual training monitor.

    Memory stays at about ``chunk_size x (chunk_size + 4k)`` similarities (64 MiB of float32
    by default) whatever the set sizes.

    Args:
        train_x: (N, D) reference features (L2-normalised here).
        train_y: (N,) integer labels.
        test_x: (M, D) query features.
        k: neighbours per query, at most N.
        temperature: ``None`` for majority vote, else the softmax temperature (> 0).
        chunk_size: queries and references per block.
        num_classes: number of classes; defaults to ``max(train_y) + 1``.

    Returns:
        (M,) long tensor of predictions on ``test_x``'s device.
    """
    train_x = check_features(train_x, "train_x")
    test_x = check_features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}"
        )
    train_y = check_labels(train_y, train_x.shape[0], "train labels")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > train_x.shape[0]:
        raise ValueError(
            f"k={k} but only {train_x.shape[0]} reference samples: use k <= "
            f"{train_x.shape[0]} or more samples"
        )
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature must be > 0 or None, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device = test_x.device
    num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
    refs = nn.functional.normalize(train_x.to(device), dim=1)
    ref_labels = train_y.to(device)
    preds = []
    for start in range(0, test_x.shape[0], chunk_size):
        q = nn.functional.normalize(test_x[start : start + chunk_size], dim=1)
        sim, idx = _topk_similar(q, refs, k, chunk_size)
        labels = ref_labels[idx]
        if temperature is None:
            votes = torch.zeros(q.shape[0], num_classes, device=device)
            votes.scatter_add_(1, labels, torch.ones_like(sim))
            # counts dominate; among equal counts, the class met at the lowest rank wins
            rank = torch.arange(k, 0, -1, device=device, dtype=sim.dtype).expand_as(sim)
            first = torch.zeros_like(votes).scatter_reduce_(1, labels, rank, "amax")
            scores = votes * (k + 1) + first
        else:
            scores = torch.zeros(q.shape[0], num_classes, dtype=sim.dtype, device=device)
            scores.scatter_add_(1, labels, (sim / temperature).exp())
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    k: int = 5,
    temperature: float | None = None,
    chunk_size: int = 4096,
) -> float:
    """Accuracy of :func:`knn_predict` on labelled test features (same arguments)."""
    train_x, train_y, test_x, test_y = check_pair(train_x, train_y, test_x, test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    pred = knn_predict(
        train_x, train_y, test_x, k=k, temperature=temperature,
        chunk_size=chunk_size, num_classes=num_classes,
    )
    return int((pred == test_y).sum()) / len(test_y)
