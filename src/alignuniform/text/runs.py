"""The ``alignuniform text`` experiments end to end: read STS-B, load the model, measure or
train, write the JSON files, and return a typed result for the caller to print and plot.

- :func:`run_text_eval`: alignment, uniformity and STS Spearman of each representation
  (``text_eval.json``);
- :func:`run_text_dropout`: the alignment of SimCSE's dropout positives (``dropout.json``);
- :func:`run_text_train`: unsupervised SimCSE with the STS-B eval split measured along the
  way (``evals.jsonl`` as it comes, the model in ``OUT/model``, ``text_train.json``).

The figures of these runs (``plane.png``, ``trajectory.png``) are drawn by
``alignuniform.report.text_figures`` from the results (drawing is a report concern, above
this package). Each function seeds torch with ``seed`` before loading the model, so a run
is reproducible from its arguments.

Examples:
    >>> from alignuniform.text.runs import run_text_eval
    >>> run = run_text_eval("all-MiniLM-L6-v2", "data/stsb", "runs/text_eval")  # doctest: +SKIP
    >>> run.result["representations"]["pooling"]["spearman"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignuniform.io import append_jsonl, check_writable_dir, write_json
from alignuniform.text.settings import REPRESENTATIONS, SimCSEConfig


@dataclass(frozen=True)
class TextEvalRun:
    """What :func:`run_text_eval` measured and wrote.

    Attributes:
        result: The content of ``text_eval.json`` (``evaluate_sts``'s dict plus ``model``
            and ``seed``).
        split: The STS-B split measured.
        dim: The model's output dimension (the uniformity bound of its plane).
        path: ``text_eval.json``.
    """

    result: dict
    split: str
    dim: int
    path: Path


@dataclass(frozen=True)
class TextDropoutRun:
    """What :func:`run_text_dropout` measured and wrote.

    Attributes:
        result: The content of ``dropout.json`` (model, split, seed, ``n_available``
            distinct sentences of the split, and one row per dropout setting).
        n_sentences: Sentences measured (``n_available`` or the first ``max_sentences``).
        path: ``dropout.json``.
    """

    result: dict
    n_sentences: int
    path: Path


@dataclass(frozen=True)
class TextTrainRun:
    """What :func:`run_text_train` trained and wrote.

    Attributes:
        result: The content of ``text_train.json`` (``train_simcse``'s history plus the
            source, the Spearman before and after, and the saved model's folder).
        config: The run's settings.
        dim: The model's output dimension.
        model_dir: The fine-tuned model (sentence-transformers format).
        path: ``text_train.json``.
        log: ``evals.jsonl``, one evaluation record per line.
    """

    result: dict
    config: SimCSEConfig
    dim: int
    model_dir: Path
    path: Path
    log: Path

    @property
    def before(self) -> dict:
        """The evaluation before the first step."""
        return self.result["evals"][0]

    @property
    def after(self) -> dict:
        """The last evaluation."""
        return self.result["evals"][-1]


def _load_model(name: str | Path, device: str | None, seed: int):
    """Seed torch, then load the sentence-transformers model ``name``."""
    import torch

    from alignuniform.text.encoders import load_sentence_model

    torch.manual_seed(seed)
    return load_sentence_model(name, device=device)


def _dim(model) -> int:
    # sentence-transformers >= 5 renamed the method; both return the output dimension
    get = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension)
    return int(get())


def run_text_eval(
    model: str | Path, stsb: str | Path, out: str | Path, *, split: str = "dev",
    representations: Sequence[str] = REPRESENTATIONS, threshold: float = 4.0,
    batch_size: int = 64, device: str | None = None, seed: int = 0, progress: bool = True,
) -> TextEvalRun:
    """Measure each representation of ``model`` on an STS-B split; write ``text_eval.json``.

    Args:
        model: sentence-transformers model name or folder (``load_sentence_model``).
        stsb: A folder with ``sts-<split>.csv``, or one such file.
        out: Output folder (checked writable before any work).
        split: STS-B split.
        representations: Of ``REPRESENTATIONS``.
        threshold: Gold score above which a pair counts as positive.
        batch_size: Sentences per batch.
        device: Torch device (``None``: CUDA when available).
        seed: Seeds torch before the model loads.
        progress: Show progress bars.
    """
    from alignuniform.text.sts_eval import evaluate_sts
    from alignuniform.text.stsb import read_stsb

    out = check_writable_dir(out)
    sts = read_stsb(stsb, split)
    encoder = _load_model(model, device, seed)
    result = evaluate_sts(encoder, sts, representations, threshold=threshold,
                          batch_size=batch_size, progress=progress)
    result.update(model=str(model), seed=seed)
    path = write_json(out / "text_eval.json", result)
    return TextEvalRun(result=result, split=split, dim=_dim(encoder), path=path)


def run_text_dropout(
    model: str | Path, stsb: str | Path, out: str | Path, *, split: str = "dev",
    rates: Sequence[float] = (0.05, 0.1, 0.2, 0.3), fixed_rate: float = 0.1,
    max_sentences: int | None = None, batch_size: int = 64, device: str | None = None,
    seed: int = 0, progress: bool = True,
) -> TextDropoutRun:
    """Alignment of two dropout passes over the distinct sentences of an STS-B split
    (``dropout_alignment``); write ``dropout.json``.

    Args:
        model, stsb, out, split, batch_size, device, progress: As in :func:`run_text_eval`.
        rates: Dropout rates with independent masks.
        fixed_rate: Dropout rate of the fixed-mask setting.
        max_sentences: Use only the first this many distinct sentences (``None``: all).
        seed: Seeds torch before the model loads, and the dropout masks.
    """
    from alignuniform.text.dropout import dropout_alignment
    from alignuniform.text.stsb import read_stsb

    out = check_writable_dir(out)
    sentences = read_stsb(stsb, split).sentences()
    n_available = len(sentences)
    sentences = sentences[:max_sentences]
    encoder = _load_model(model, device, seed)
    rows = dropout_alignment(encoder, sentences, rates, fixed_mask_rate=fixed_rate, seed=seed,
                             batch_size=batch_size, progress=progress)
    result = {"model": str(model), "split": split, "seed": seed, "n_available": n_available,
              "rows": rows}
    path = write_json(out / "dropout.json", result)
    return TextDropoutRun(result=result, n_sentences=len(sentences), path=path)


def run_text_train(
    model: str | Path, stsb: str | Path, out: str | Path, config: SimCSEConfig, *,
    sentences: str | Path | None = None, train_split: str | None = None,
    eval_split: str = "dev", max_sentences: int | None = None, threshold: float = 4.0,
    device: str | None = None, progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
) -> TextTrainRun:
    """Fine-tune ``model`` with unsupervised SimCSE (``train_simcse``), measuring the STS-B
    ``eval_split`` every ``config.eval_every`` steps; write ``evals.jsonl`` as the
    evaluations come, the model to ``out/model`` and ``text_train.json``.

    Args:
        model, stsb, out, threshold, device, progress: As in :func:`run_text_eval`; torch
            is seeded with ``config.seed``.
        config: The run's settings.
        sentences: A text file of training sentences, one a line; or
        train_split: Train on the distinct sentences of this STS-B split instead.
        eval_split: STS-B split measured during training.
        max_sentences: Train on the first this many sentences only (``None``: all).
        on_eval: Called with each evaluation record after it is logged.

    Raises:
        ValueError: Neither or both of ``sentences`` and ``train_split``.
    """
    from alignuniform.text.simcse import save_sentence_model, train_simcse
    from alignuniform.text.stsb import read_sentences, read_stsb

    if (sentences is None) == (train_split is None):
        raise ValueError("give one of sentences (a file) and train_split (an STS-B split)")
    out = check_writable_dir(out)
    evaluated = read_stsb(stsb, eval_split)
    if sentences is not None:
        train_sentences = read_sentences(sentences)
        source = str(sentences)
    else:
        train_sentences = read_stsb(stsb, train_split).sentences()  # type: ignore[arg-type]
        source = f"STS-B {train_split} (distinct sentences)"
    n_available = len(train_sentences)
    train_sentences = train_sentences[:max_sentences]
    encoder = _load_model(model, device, config.seed)
    log = out / "evals.jsonl"
    log.unlink(missing_ok=True)

    def logged(record: dict) -> None:
        append_jsonl(log, record)
        if on_eval is not None:
            on_eval(record)

    history = train_simcse(encoder, train_sentences, config, eval_split=evaluated,
                           threshold=threshold, progress=progress, on_eval=logged)
    model_dir = save_sentence_model(encoder, out / "model")
    result = {"model": str(model), "source": source, "n_available": n_available,
              "eval_split": eval_split, "threshold": threshold,
              "spearman_before": history["evals"][0]["spearman"],
              "spearman_after": history["evals"][-1]["spearman"],
              "saved_model": str(model_dir), **history}
    path = write_json(out / "text_train.json", result)
    return TextTrainRun(result=result, config=config, dim=_dim(encoder), model_dir=model_dir,
                        path=path, log=log)
