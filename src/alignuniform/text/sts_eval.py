"""Alignment, uniformity and STS Spearman of sentence representations on an STS-B split.

Definitions follow SimCSE (Gao et al., 2021, Sec. 5): alignment over pairs with gold
score above 4, uniformity over all (distinct) sentences of the split, both on
L2-normalised embeddings and computed exactly with :mod:`alignuniform.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from alignuniform import metrics
from alignuniform.text.encoders import encode_representations
from alignuniform.text.stsb import StsSplit

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def sts_spearman(x1: torch.Tensor, x2: torch.Tensor, scores: np.ndarray | Sequence[float]) -> float:
    """Spearman correlation between the cosine similarity of row pairs and gold scores."""
    if x1.shape != x2.shape or x1.ndim != 2 or x1.shape[0] != len(scores):
        raise ValueError(
            f"need two (n, d) tensors and n scores, got {tuple(x1.shape)}, "
            f"{tuple(x2.shape)} and {len(scores)} scores"
        )
    if len(scores) < 2:
        raise ValueError("Spearman correlation needs at least 2 pairs")
    cosine = (F.normalize(x1.double(), dim=1) * F.normalize(x2.double(), dim=1)).sum(1)
    return float(stats.spearmanr(cosine.numpy(), np.asarray(scores)).statistic)


def sts_geometry(
    reps: torch.Tensor,
    index1: np.ndarray,
    index2: np.ndarray,
    scores: np.ndarray,
    positive: np.ndarray,
) -> dict[str, float]:
    """Alignment, uniformity and Spearman of one representation of a split's sentences.

    Args:
        reps: (n_sentences, d) representation of the distinct sentences.
        index1, index2: Row of ``reps`` holding each pair's first and second sentence.
        scores: Gold score of each pair.
        positive: Boolean mask of the pairs used for alignment.
    """
    x1, x2 = reps[index1], reps[index2]
    return {
        "align": metrics.alignment(x1[positive], x2[positive]),
        "uniform": float(metrics.uniformity(reps)),
        "spearman": sts_spearman(x1, x2, scores),
    }


def evaluate_sts(
    model: SentenceTransformer,
    split: StsSplit,
    representations: Sequence[str] = ("pooling",),
    *,
    threshold: float = 4.0,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Measure each representation of ``model`` on an STS-B split.

    Returns:
        ``{"representations": {name: {"align", "uniform", "spearman", "dim"}}, ...}`` plus
        the counts behind them (pairs, positive pairs, distinct sentences, duplicates
        dropped, lines with extra fields) and the settings.

    Raises:
        ValueError: If no pair scores above ``threshold`` or a representation is unknown.
    """
    positive = split.positive_mask(threshold)
    sentences = split.sentences()
    row = {s: i for i, s in enumerate(sentences)}
    index1 = np.array([row[s] for s in split.sentences1])
    index2 = np.array([row[s] for s in split.sentences2])
    reps = encode_representations(
        model, sentences, representations, batch_size=batch_size, progress=progress
    )
    results = {}
    for name, x in reps.items():
        results[name] = {**sts_geometry(x, index1, index2, split.scores, positive),
                         "dim": int(x.shape[1])}
    return {
        "split": str(split.path),
        "threshold": threshold,
        "n_pairs": len(split),
        "n_positive_pairs": int(positive.sum()),
        "n_sentences": len(sentences),
        "n_duplicate_sentences": 2 * len(split) - len(sentences),
        "n_extra_field_lines": split.n_extra_field_lines,
        "representations": results,
    }
