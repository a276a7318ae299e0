"""Every layer and pooling of a sentence encoder, measured on STS-B: the rows of the zoo.

One forward pass per batch (``output_hidden_states=True``) yields the embedding layer and
every transformer layer at once; each is pooled two ways (the ``[CLS]`` token and the
masked mean of the tokens), and the last layer also the model's own way (its
sentence-transformers modules after the transformer: pooling, then normalisation where the
model has it). No layer is encoded twice.

Each representation is measured with and without BERT-whitening (Su et al., 2021). As in
that paper the whitening is fitted on the evaluated sentences themselves (the distinct
sentences of the STS-B split), so the whitened rows show what a linear map of the same
features can reach, not a held-out transfer.

The numbers of a row (:data:`METRIC_COLUMNS`): STS-B Spearman and SimCSE's alignment (pairs
above the threshold) and uniformity (distinct sentences), from
:func:`~alignuniform.text.sts_eval.sts_geometry`; the uniformity bound of the dimension and
the gap to it (what makes encoders of different widths comparable); and the label-free
spectral metrics of :mod:`alignuniform.metrics` on the L2-normalised rows (the sphere the
other numbers live on). LiDAR's surrogate classes are ``q`` dropout passes (train mode) of
the first ``lidar_sentences`` sentences, whitened with the same fitted map.

:func:`random_weights` gives the same architecture with freshly initialised weights (from
the model's own config, seeded, nothing downloaded): the floor each layer starts from.

Examples:
    >>> from alignuniform.text.zoo import representation_id
    >>> representation_id("all-MiniLM-L6-v2", "trained", 6, "model", whitened=True)
    'all-MiniLM-L6-v2/trained/L6/model/whitened'
    >>> representation_id("all-MiniLM-L6-v2", "finetune", 6, "mean", whitened=False,
    ...                   finetune_loss="contrastive", finetune_step=10)
    'all-MiniLM-L6-v2/finetune-contrastive@10/L6/mean/raw'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from alignuniform import metrics
from alignuniform.text.encoders import (
    _backbone,
    _masked_mean,
    _tokenize,
    check_sentences,
    encode_batches,
    fit_whitening,
)
from alignuniform.text.sts_eval import sts_geometry
from alignuniform.text.stsb import StsSplit

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Poolings of every layer, and the model's own (last layer only).
LAYER_POOLINGS = ("cls", "mean")
OWN_POOLING = "model"
#: The numbers of each row, in table order.
METRIC_COLUMNS = ("stsb_spearman", "alignment", "uniformity", "uniformity_bound",
                  "uniformity_gap", "rankme", "effective_rank", "stable_rank", "alpha_req",
                  "gaussian_w2", "lidar")

Key = tuple[int, str]  # (layer, pooling); layer 0 is the embedding layer


def representation_id(model: str, weights: str, layer: int, pooling: str, *,
                      whitened: bool, finetune_loss: str | None = None,
                      finetune_step: int | None = None) -> str:
    """The row id: ``model/weights/L<layer>/pooling/(raw|whitened)``; a fine-tuning
    checkpoint's weights part names its loss and step (``finetune-contrastive@10``), so every
    row of a zoo table has its own id."""
    if finetune_loss is not None:
        weights = f"{weights}-{finetune_loss}@{int(finetune_step or 0)}"
    return f"{model}/{weights}/L{int(layer)}/{pooling}/{'whitened' if whitened else 'raw'}"


def row_id(row: Mapping) -> str:
    """:func:`representation_id` of a table row, from its key columns."""
    return representation_id(row["model"], row["weights"], row["layer"], row["pooling"],
                             whitened=row["whitened"], finetune_loss=row.get("finetune_loss"),
                             finetune_step=row.get("finetune_step"))


def forward_layers(model: SentenceTransformer, sentences: Sequence[str]) -> dict[Key, torch.Tensor]:
    """One forward pass over a batch: every layer pooled each way, and the model's own
    pooling of the last layer. The model's train/eval mode is left as is."""
    features = _tokenize(model, sentences, model.device)
    inputs = {k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in features}
    hidden = _backbone(model)(**inputs, output_hidden_states=True, return_dict=True).hidden_states
    mask = features["attention_mask"]
    reps: dict[Key, torch.Tensor] = {}
    for layer, tokens in enumerate(hidden):
        reps[(layer, "cls")] = tokens[:, 0]
        reps[(layer, "mean")] = _masked_mean(tokens, mask)
    pooled = {**features, "token_embeddings": hidden[-1]}
    for module in list(model)[1:]:
        pooled = module(pooled)
    reps[(len(hidden) - 1, OWN_POOLING)] = pooled["sentence_embedding"]
    return reps


def encode_layers(
    model: SentenceTransformer, sentences: Sequence[str], *, batch_size: int = 64,
    dropout: bool = False, progress: bool = True,
) -> dict[Key, torch.Tensor]:
    """:func:`forward_layers` over all ``sentences`` in batches (sorted by length to limit
    padding): ``{(layer, pooling): (N, d) float32 CPU tensor}`` in the order of ``sentences``.

    Args:
        dropout: Encode in train mode (dropout on); the model's mode is restored afterwards.
    """
    check_sentences(sentences)
    return encode_batches(model, sentences, lambda batch: forward_layers(model, batch),
                          batch_size=batch_size, dropout=dropout, progress=progress,
                          desc="layers")


def random_weights(model: SentenceTransformer, seed: int = 0) -> SentenceTransformer:
    """A copy of ``model`` whose transformer is re-initialised from its own config.

    ``AutoModel.from_config`` (the config read from the model folder, seeded with ``seed``)
    builds the fresh weights; tokenizer and pooling modules are the model's.
    """
    from transformers import AutoModel

    fresh = copy.deepcopy(model)
    backbone = _backbone(fresh)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init = AutoModel.from_config(copy.deepcopy(backbone.config))
    backbone.load_state_dict(init.state_dict())
    return fresh


@dataclass(frozen=True)
class StsPairs:
    """A split, its distinct sentences, and per pair the rows of its two sentences and
    whether it is positive (gold score above ``threshold``)."""

    split: StsSplit
    sentences: list[str]
    index1: np.ndarray
    index2: np.ndarray
    scores: np.ndarray
    positive: np.ndarray
    threshold: float

    @classmethod
    def of(cls, split: StsSplit, threshold: float = 4.0) -> StsPairs:
        """Index ``split``; ``ValueError`` if no pair scores above ``threshold``."""
        positive = split.positive_mask(threshold)
        sentences = split.sentences()
        row = {s: i for i, s in enumerate(sentences)}
        return cls(split, sentences, np.array([row[s] for s in split.sentences1]),
                   np.array([row[s] for s in split.sentences2]), split.scores, positive,
                   threshold)


def _defined(metric: Callable[..., float], *args: torch.Tensor) -> float | None:
    """``metric(*args)``, or ``None`` where the value is undefined (NaN, or a spectrum the
    metric refuses)."""
    try:
        value = metric(*args)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def is_constant(x: torch.Tensor, rtol: float = 1e-6) -> bool:
    """Whether every row of ``x`` is the same vector up to float rounding (the embedding
    layer's ``[CLS]``: one token, one position, for every sentence).

    Its centred spectrum is rounding noise, so the metrics of that spectrum (effective and
    stable rank, alpha-ReQ, LiDAR) are left undefined rather than reported from noise.

    >>> is_constant(torch.ones(3, 2)), is_constant(torch.eye(2))
    (True, False)
    """
    return bool((x - x[0]).abs().max() <= rtol * x.abs().max())


def measure(x: torch.Tensor, pairs: StsPairs, views: torch.Tensor | None = None) -> dict:
    """Every number of :data:`METRIC_COLUMNS` for one representation (``None`` where
    undefined: a constant representation has no Spearman and no centred spectrum).

    Args:
        x: (n_sentences, d) representation of ``pairs.sentences``.
        pairs: The split.
        views: (n, q, d) dropout views for LiDAR (``None``: LiDAR is ``None``).
    """
    numbers = sts_geometry(x, pairs.index1, pairs.index2, pairs.scores, pairs.positive)
    dim = int(x.shape[1])
    bound = metrics.uniformity_bound(dim)
    unit = F.normalize(x.double(), dim=1)
    spread = not is_constant(unit)
    spearman = numbers["spearman"]
    return {"dim": dim,
            "stsb_spearman": spearman if spread and math.isfinite(spearman) else None,
            "alignment": numbers["align"], "uniformity": numbers["uniform"],
            "uniformity_bound": bound, "uniformity_gap": numbers["uniform"] - bound,
            "rankme": _defined(metrics.rankme, unit),
            "effective_rank": _defined(metrics.effective_rank, unit) if spread else None,
            "stable_rank": _defined(metrics.stable_rank, unit) if spread else None,
            "alpha_req": _defined(metrics.alpha_req, unit) if spread else None,
            "gaussian_w2": _defined(metrics.gaussian_w2_uniformity, unit),
            "lidar": None if views is None or not spread else _defined(
                metrics.lidar, F.normalize(views.double(), dim=2))}


def measure_model(
    model: SentenceTransformer, pairs: StsPairs, *, name: str, weights: str = "trained",
    last_layer_only: bool = False, whitening: bool = True, lidar_sentences: int = 256,
    lidar_views: int = 4, batch_size: int = 64, seed: int = 0, progress: bool = True,
    extra: dict | None = None,
) -> list[dict]:
    """Measure every representation of ``model`` on ``pairs``: one row per (layer, pooling,
    whitened), shaped like a sweep's ``results.csv`` rows.

    Args:
        model: A sentence-transformers model with a transformer backbone.
        pairs: The STS-B split (:meth:`StsPairs.of`).
        name: The model column.
        weights: The weights column (``"trained"``, ``"random"``, ``"finetune"``).
        last_layer_only: Measure only the last layer's poolings (fine-tuning checkpoints).
        whitening: Add the whitened twin of every row.
        lidar_sentences: Sentences encoded ``lidar_views`` times with dropout for LiDAR
            (0: no LiDAR, the column is ``None``).
        lidar_views: Dropout passes per sentence (q), >= 2.
        batch_size, progress: Encoding settings.
        seed: Seeds the dropout masks of the LiDAR views.
        extra: Columns added to every row (e.g. the fine-tuning loss and step).
    """
    if lidar_sentences < 0 or (lidar_sentences and lidar_views < 2):
        raise ValueError(f"need lidar_sentences >= 0 and lidar_views >= 2, got "
                         f"{lidar_sentences} and {lidar_views}")
    reps = encode_layers(model, pairs.sentences, batch_size=batch_size, progress=progress)
    last = max(layer for layer, _ in reps)
    if last_layer_only:
        reps = {k: v for k, v in reps.items() if k[0] == last}
    views: dict[Key, torch.Tensor] | None = None
    if lidar_sentences:
        subset = pairs.sentences[:lidar_sentences]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            passes = [encode_layers(model, subset, batch_size=batch_size, dropout=True,
                                    progress=False) for _ in range(lidar_views)]
        views = {k: torch.stack([p[k] for p in passes], dim=1) for k in reps}
    rows = []
    for (layer, pooling), x in tqdm(sorted(reps.items()), desc=f"measure {name} {weights}",
                                    disable=not progress, leave=False):
        kinds = [(False, x, None if views is None else views[(layer, pooling)])]
        # no whitened twin of a constant representation: it has no direction to whiten
        if whitening and not is_constant(x):
            white = fit_whitening(x)
            v = None if views is None else views[(layer, pooling)]
            kinds.append((True, white.apply(x),
                          None if v is None else white.apply(v.reshape(-1, v.shape[-1]))
                          .reshape(v.shape[0], v.shape[1], -1)))
        for whitened, features, v in kinds:
            row = {"id": "", "model": name, "weights": weights, "layer": layer,
                   "n_layers": last, "pooling": pooling, "whitened": whitened,
                   **(extra or {}), **measure(features, pairs, v)}
            row["id"] = row_id(row)
            rows.append(row)
    return rows
