"""Unsupervised SimCSE fine-tuning: dropout positives, in-batch negatives.

Each batch of sentences goes through the encoder twice in one forward pass (the batch
concatenated with itself), so every sentence gets two independent dropout masks; row i of
the first half is the positive of row i of the second, and the other rows are negatives.
The objective is the paper's ``L_contrastive`` (tau = 0.05 as SimCSE) or
``L_align + L_uniform``, both from :mod:`alignuniform.losses`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from alignuniform.io import fsync_dir
from alignuniform.text.encoders import check_sentences, forward_representations
from alignuniform.text.settings import SimCSEConfig
from alignuniform.text.sts_eval import evaluate_sts
from alignuniform.text.stsb import StsSplit

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

def train_simcse(
    model: SentenceTransformer,
    sentences: Sequence[str],
    config: SimCSEConfig | None = None,
    *,
    eval_split: StsSplit | None = None,
    threshold: float = 4.0,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
) -> dict:
    """Fine-tune ``model`` in place with unsupervised SimCSE.

    Args:
        model: A sentence-transformers model (its pooled, L2-normalised output is trained).
        sentences: Training sentences (non-empty strings).
        config: Run settings (defaults: ``SimCSEConfig()``).
        eval_split: STS-B split measured every ``config.eval_every`` steps (alignment over
            pairs above ``threshold``, uniformity, Spearman); ``None`` skips evaluation.
        threshold: Gold score above which an eval pair is positive.
        progress: Show a progress bar.
        on_eval: Called with each evaluation record (e.g. to write it to disk as it comes).

    Returns:
        ``{"config", "steps": [{"step", "epoch", "loss", <terms>}], "evals": [{"step",
        "align", "uniform", "spearman"}], "n_sentences", "n_dropped_per_epoch"}``.

    Raises:
        ValueError: On empty input, fewer sentences than one batch, or a bad config.
    """
    config = config or SimCSEConfig()
    check_sentences(sentences)
    n = len(sentences)
    if n < config.batch_size:
        raise ValueError(
            f"{n} sentences are fewer than one batch of {config.batch_size}; lower batch_size"
        )
    if eval_split is not None:
        eval_split.positive_mask(threshold)  # fail before training, not after the first steps
    batches_per_epoch = n // config.batch_size
    total = config.steps or batches_per_epoch * config.epochs
    criterion = config.criterion()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    torch.manual_seed(config.seed)  # the dropout masks
    shuffler = torch.Generator().manual_seed(config.seed)
    saved_length, model.max_seq_length = model.max_seq_length, config.max_seq_length
    history: dict = {"config": asdict(config), "steps": [], "evals": [], "n_sentences": n,
                     "n_dropped_per_epoch": n - batches_per_epoch * config.batch_size}

    def evaluate(step: int) -> None:
        if eval_split is None:
            return
        # measure at the model's own max_seq_length: truncating long eval sentences to the
        # training length would shift even the step-0 numbers away from `text eval`'s
        model.max_seq_length = saved_length
        try:
            point = evaluate_sts(model, eval_split, threshold=threshold,
                                 batch_size=config.batch_size, progress=False)
        finally:
            model.max_seq_length = config.max_seq_length
        record = {"step": step, **point["representations"]["pooling"]}
        history["evals"].append(record)
        if on_eval is not None:
            on_eval(record)

    try:
        evaluate(0)
        bar = tqdm(total=total, desc="simcse", disable=not progress)
        step = 0
        while step < total:
            epoch = step // batches_per_epoch
            order = torch.randperm(n, generator=shuffler).tolist()
            for b in range(batches_per_epoch):
                if step >= total:
                    break
                batch = [sentences[i] for i in order[b * config.batch_size:
                                                     (b + 1) * config.batch_size]]
                model.train()
                emb = forward_representations(model, batch + batch)["pooling"]
                emb = F.normalize(emb.float(), dim=1)
                out = criterion(emb[: len(batch)], emb[len(batch):])
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                optimizer.step()
                step += 1
                terms = {k: float(v.detach()) for k, v in out.items()}
                record = {"step": step, "epoch": epoch, **terms}
                if not math.isfinite(record["loss"]):
                    raise ValueError(f"loss became {record['loss']} at step {step}; lower lr")
                history["steps"].append(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if step % config.eval_every == 0 or step == total:
                    evaluate(step)
        bar.close()
    finally:
        model.max_seq_length = saved_length
        model.eval()
    return history


def save_sentence_model(model: SentenceTransformer, path: str | Path) -> Path:
    """Save ``model`` in sentence-transformers format, replacing ``path`` only once complete.

    The model is written to a sibling temporary folder first, so an interrupted save never
    leaves a half-written model where a loadable one is expected. A folder cannot be
    renamed over another in one step, so the old model is moved aside first; the parent
    folder is fsynced after the swap (as :func:`alignuniform.io.atomic_write` does for files).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    model.save(str(tmp))
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path
