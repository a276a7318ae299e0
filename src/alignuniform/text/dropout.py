"""Dropout as data augmentation (SimCSE): how far apart are two passes of one sentence?

SimCSE's unsupervised positives are the same sentence encoded twice with independent
dropout masks. This module measures the alignment of such pairs for several dropout
rates, against "no dropout" (identical passes) and "fixed mask" (the same mask on both
passes), the settings behind SimCSE's Figure 2 and Table 3.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from alignuniform import metrics
from alignuniform.text.encoders import encode_representations

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def dropout_modules(model: nn.Module) -> list[nn.Dropout]:
    """All ``nn.Dropout`` layers of ``model`` (BERT-style attention dropout reads their ``p``)."""
    return [m for m in model.modules() if isinstance(m, nn.Dropout)]


@contextmanager
def dropout_rate(model: nn.Module, p: float) -> Iterator[int]:
    """Temporarily set every dropout layer's probability to ``p``; yields how many were set."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    layers = dropout_modules(model)
    saved = [m.p for m in layers]
    for m in layers:
        m.p = p
    try:
        yield len(layers)
    finally:
        for m, old in zip(layers, saved, strict=True):
            m.p = old


def _seeded_pass(model: SentenceTransformer, sentences: Sequence[str], seed: int, **kw):
    # fork_rng keeps the caller's global RNG stream untouched by the re-seeding
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return encode_representations(model, sentences, ("pooling",), dropout=True, **kw)[
            "pooling"
        ]


def dropout_alignment(
    model: SentenceTransformer,
    sentences: Sequence[str],
    rates: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    *,
    fixed_mask_rate: float = 0.1,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict]:
    """Alignment (and uniformity) of two dropout passes of the same sentences.

    Args:
        model: A sentence-transformers model (its pooled output is measured).
        sentences: Distinct non-empty sentences.
        rates: Dropout probabilities with independent masks on the two passes.
        fixed_mask_rate: Dropout probability of the "fixed mask" row (same mask twice).
        seed: Seed of the dropout masks.
        batch_size: Sentences per forward pass.
        progress: Show progress bars.

    Returns:
        One dict per setting: ``mode`` ("no dropout", "fixed mask", "dropout"), ``p``,
        ``align`` (between the passes), ``uniform`` (of the first pass), ``n_sentences``.

    Raises:
        ValueError: If ``model`` has no dropout layers or a rate is outside [0, 1).
    """
    if not dropout_modules(model):
        raise ValueError("this model has no nn.Dropout layers, so dropout positives are identical")
    kw = {"batch_size": batch_size, "progress": progress}
    settings = [("no dropout", 0.0, seed, seed), ("fixed mask", fixed_mask_rate, seed, seed)]
    settings += [("dropout", float(p), seed, seed + 1) for p in rates]
    rows = []
    for mode, p, seed1, seed2 in settings:
        with dropout_rate(model, p):
            x = _seeded_pass(model, sentences, seed1, **kw)
            y = _seeded_pass(model, sentences, seed2, **kw)
        rows.append({"mode": mode, "p": p, "align": metrics.alignment(x, y),
                     "uniform": float(metrics.uniformity(x)), "n_sentences": len(sentences)})
    return rows
