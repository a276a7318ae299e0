"""``alignuniform text zoo`` end to end: every available pretrained encoder, its random-weight
twin and short fine-tuning runs, measured on STS-B into one table.

For each model of :func:`~alignuniform.text.zoo_models.zoo_models` that is installed:

1. the trained weights, every layer x pooling x whitening
   (:func:`~alignuniform.text.zoo.measure_model`);
2. the same architecture with random weights (:func:`~alignuniform.text.zoo.random_weights`);
3. per SimCSE loss, a short fine-tuning run (``train_simcse`` on the distinct sentences of
   the STS-B train split) measured every ``finetune_every`` steps, last layer only (the
   trajectory of SimCSE's Figure 2; step 0 is not repeated: it is the trained rows).

The table is written like a sweep's: ``results.jsonl`` and ``results.csv`` (one row per
representation, columns ``index``, ``id``, ``model``, ``weights``, ``layer``, ``pooling``,
``whitened``, the fine-tuning loss and step, then ``METRIC_COLUMNS``), plus ``zoo.json``
(settings, models measured and skipped).

Examples:
    >>> from alignuniform.text.zoo_run import run_text_zoo
    >>> run = run_text_zoo("data/stsb", "runs/text_zoo")  # doctest: +SKIP
    >>> len(run.rows), run.skipped  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alignuniform.io import atomic_write_text, check_writable_dir, read_json, to_json, write_json
from alignuniform.text.settings import LOSSES
from alignuniform.text.stsb import StsSplit

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from alignuniform.text.zoo import StsPairs

#: The columns every row starts with (then ``dim`` and the metrics).
KEY_COLUMNS = ("index", "id", "model", "weights", "finetune_loss", "finetune_step", "layer",
               "n_layers", "pooling", "whitened")


@dataclass(frozen=True)
class ZooRun:
    """What :func:`run_text_zoo` measured and wrote.

    Attributes:
        rows: The table, one dict per representation.
        measured: The models measured, with their folders.
        skipped: The models not installed, with how to install them.
        paths: ``results.csv``, ``results.jsonl`` and ``zoo.json``.
        reused: The parts read back from ``parts/`` instead of measured (``model.part``).
    """

    rows: list[dict]
    measured: dict[str, str]
    skipped: dict[str, str]
    paths: dict[str, Path]
    reused: list[str]


def _fingerprint(split: StsSplit) -> str:
    """SHA-256 of a split's sentences and scores: a part is reused only on the same data."""
    h = hashlib.sha256()
    for a, b, score in zip(split.sentences1, split.sentences2, split.scores.tolist(),
                              strict=True):
        h.update(f"{a}\t{b}\t{score!r}\n".encode())
    return h.hexdigest()


def _folder_fingerprint(folder: Path) -> str:
    """SHA-256 of a model folder's file names and sizes (cheap: no weights are read)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder)}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


def _part(out: Path, name: str, part: str, key: dict, measure: Callable[[], list[dict]],
          reused: list[str]) -> list[dict]:
    """The rows of one part: read from ``parts/`` when stored with the same ``key``,
    otherwise measured and stored (atomically, so an interrupted part is measured again)."""
    path = out / "parts" / f"{name}.{part}.json"
    if path.is_file():
        stored = read_json(path)
        if stored.get("key") == key:
            reused.append(f"{name}.{part}")
            return list(stored["rows"])
    rows = measure()
    path.parent.mkdir(exist_ok=True)
    write_json(path, {"key": key, "rows": rows})
    return rows


def write_table(out: Path, rows: list[dict]) -> dict[str, Path]:
    """``results.jsonl`` (strict JSON, one row a line) and ``results.csv`` (empty cells for
    ``None``), columns in :data:`KEY_COLUMNS` order, then in order of first appearance."""
    columns = [c for c in KEY_COLUMNS if any(c in r for r in rows)]
    for r in rows:
        columns += [k for k in r if k not in columns]
    jsonl = atomic_write_text(out / "results.jsonl",
                              "".join(to_json(r, indent=None) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return {"results.csv": atomic_write_text(out / "results.csv", buf.getvalue()),
            "results.jsonl": jsonl}


def finetune_rows(model: SentenceTransformer, name: str, pairs: StsPairs,
                  train_sentences: list[str], loss: str, *, steps: int, every: int,
                  batch_size: int, seed: int, progress: bool, **measure_kwargs: Any) -> list[dict]:
    """Fine-tune a copy of ``model`` with ``loss`` for ``steps`` steps, measuring its last
    layer every ``every`` steps (and at the end); ``model`` itself is left untouched."""
    from alignuniform.text.settings import SimCSEConfig
    from alignuniform.text.simcse import train_simcse
    from alignuniform.text.zoo import measure_model

    tuned = copy.deepcopy(model)
    full_length = tuned.max_seq_length
    config = SimCSEConfig(loss=loss, steps=steps, eval_every=every, batch_size=batch_size,
                          seed=seed)
    rows: list[dict] = []

    def checkpoint(record: dict) -> None:
        if record["step"] == 0:
            return  # the trained model's own rows
        # measured at the model's full length, as text eval does (training truncates to 32)
        short, tuned.max_seq_length = tuned.max_seq_length, full_length
        try:
            rows.extend(measure_model(
                tuned, pairs, name=name, weights="finetune", last_layer_only=True,
                batch_size=batch_size, seed=seed, progress=False,
                extra={"finetune_loss": loss, "finetune_step": record["step"]},
                **measure_kwargs))
        finally:
            tuned.max_seq_length = short

    train_simcse(tuned, train_sentences, config, eval_split=_probe(pairs.split, pairs.threshold),
                 threshold=pairs.threshold, progress=progress, on_eval=checkpoint)
    return rows


def _probe(split: StsSplit, threshold: float) -> StsSplit:
    """Two pairs of ``split`` (a positive one first): ``train_simcse`` evaluates its eval
    split before calling back at each checkpoint, and that evaluation is discarded here
    (:func:`finetune_rows` measures the full split itself), so it is kept to two pairs."""
    first = int(np.argmax(split.positive_mask(threshold)))
    keep = [first, 1 if first == 0 else 0]  # the full split was measured: it has 2 pairs
    return StsSplit([split.sentences1[i] for i in keep], [split.sentences2[i] for i in keep],
                    split.scores[keep], split.path)


def _model_rows(out: Path, name: str, folder: Path, pairs: StsPairs, train_sentences: list[str],
                *, losses: Sequence[str], keys: tuple[dict, dict], finetune: tuple[int, int],
                device: str | None, seed: int, progress: bool, settings: dict[str, Any],
                reused: list[str]) -> list[dict]:
    """One model's parts: trained, random twin, one fine-tuning run per loss; the model is
    loaded only when a part has to be measured."""
    import torch

    from alignuniform.text.encoders import load_sentence_model
    from alignuniform.text.zoo import measure_model, random_weights

    loaded: list[SentenceTransformer] = []

    def model() -> SentenceTransformer:
        if not loaded:
            torch.manual_seed(seed)
            loaded.append(load_sentence_model(folder, device=device))
        return loaded[0]

    # a reinstalled model of another version measures again
    key, finetune_key = ({**k, "model_files": _folder_fingerprint(folder)} for k in keys)
    steps, every = finetune
    rows = _part(out, name, "trained", key, lambda: measure_model(
        model(), pairs, name=name, seed=seed, progress=progress, **settings), reused)
    rows += _part(out, name, "random", key, lambda: measure_model(
        random_weights(model(), seed), pairs, name=name, weights="random", seed=seed,
        progress=progress, **settings), reused)

    def tune(loss: str) -> Callable[[], list[dict]]:
        return lambda: finetune_rows(model(), name, pairs, train_sentences, loss, steps=steps,
                                     every=every, seed=seed, progress=progress, **settings)

    for loss in losses if steps else ():
        rows += _part(out, name, f"finetune-{loss}", finetune_key, tune(loss), reused)
    return rows


def run_text_zoo(
    stsb: str | Path, out: str | Path, *, models: Sequence[str] | None = None,
    finetune_steps: int = 30, finetune_every: int = 10, losses: Sequence[str] = LOSSES,
    split: str = "dev", train_split: str = "train", threshold: float = 4.0,
    lidar_sentences: int = 256, lidar_views: int = 4, whitening: bool = True,
    batch_size: int = 64, device: str | None = None, seed: int = 0,
    cache: str | Path | None = None, progress: bool = True,
) -> ZooRun:
    """Measure the zoo on an STS-B split and write the table.

    Args:
        stsb: Folder with ``sts-<split>.csv`` (and ``sts-<train_split>.csv`` when
            fine-tuning).
        out: Output folder (checked writable before any work).
        models: Names of :data:`~alignuniform.text.zoo_models.ZOO_MODELS` (``None``: all);
            those not installed are skipped and listed in ``ZooRun.skipped``.
        finetune_steps: Steps of each fine-tuning run (0: none).
        finetune_every: Measure the fine-tuned model every this many steps.
        losses: SimCSE losses to fine-tune with.
        split, threshold: The measured STS-B split, and the score above which a pair is
            positive.
        train_split: The STS-B split whose distinct sentences fine-tuning reads.
        lidar_sentences, lidar_views, whitening: As in ``measure_model``.
        batch_size: Sentences per batch (encoding and fine-tuning).
        device: Torch device (``None``: CUDA when available).
        seed: Seeds the model loading, the random weights, the dropout views and training.
        cache: Where the mpnet pieces are joined (``None``: ``zoo_models.cache_root()``).
        progress: Show progress bars.

    Raises:
        ValueError: No requested model is installed (the message says how to install them),
            or a bad setting.
    """
    from alignuniform.text.stsb import read_stsb
    from alignuniform.text.zoo import StsPairs, row_id
    from alignuniform.text.zoo_models import ZOO_MODELS, zoo_models

    out = check_writable_dir(out)
    if finetune_steps < 0 or finetune_every < 1:
        raise ValueError(f"need finetune_steps >= 0 and finetune_every >= 1, got "
                         f"{finetune_steps} and {finetune_every}")
    bad = [loss for loss in losses if loss not in LOSSES]
    if bad:
        raise ValueError(f"unknown loss(es) {bad}; choose from {list(LOSSES)}")
    available, skipped = zoo_models(tuple(models or ZOO_MODELS), cache)
    if not available:
        raise ValueError("no zoo model is installed: " + "; ".join(
            f"{n}: {hint}" for n, hint in skipped.items()))
    pairs = StsPairs.of(read_stsb(stsb, split), threshold)
    train = read_stsb(stsb, train_split) if finetune_steps else None
    train_sentences = train.sentences() if train is not None else []
    settings: dict[str, Any] = {"lidar_sentences": lidar_sentences, "lidar_views": lidar_views,
                "whitening": whitening, "batch_size": batch_size}
    key = {"data": _fingerprint(pairs.split), "threshold": threshold, "seed": seed, **settings}
    finetune_key = {**key, "train": _fingerprint(train) if train is not None else None,
                    "steps": finetune_steps, "every": finetune_every}
    rows: list[dict] = []
    reused: list[str] = []
    for name, folder in available.items():
        rows += _model_rows(out, name, folder, pairs, train_sentences, losses=losses,
                            keys=(key, finetune_key), finetune=(finetune_steps, finetune_every),
                            device=device, seed=seed, progress=progress, settings=settings,
                            reused=reused)
    for i, row in enumerate(rows):
        # from the key columns: stored parts and fresh ones get the same ids
        row["index"], row["id"] = i, row_id(row)
    paths = write_table(out, rows)
    measured = {n: str(f) for n, f in available.items()}
    summary = {"stsb": str(stsb), "split": split, "train_split": train_split,
               "threshold": threshold, "n_sentences": len(pairs.sentences),
               "n_pairs": len(pairs.scores), "n_positive_pairs": int(pairs.positive.sum()),
               "finetune_steps": finetune_steps, "finetune_every": finetune_every,
               "losses": list(losses), "seed": seed, **settings,
               "measured": measured, "skipped": skipped,
               "n_rows": len(rows)}
    paths["zoo.json"] = write_json(out / "zoo.json", summary)
    return ZooRun(rows=rows, measured=measured, skipped=skipped, paths=paths, reused=reused)
