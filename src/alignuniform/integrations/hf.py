"""Held-out alignment, uniformity and spectral metrics logged from a Hugging Face
``transformers.Trainer`` or sentence-transformers' ``SentenceTransformerTrainer``, with
optional collapse detection.

Examples:
    >>> from alignuniform.integrations.hf import AlignUniformCallback
    >>> cb = AlignUniformCallback((sentences, paraphrases), every_n_steps=50)  # doctest: +SKIP
    >>> trainer = SentenceTransformerTrainer(..., callbacks=[cb])  # doctest: +SKIP
    >>> cb.attach(trainer)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP

Needs the ``hf`` extra (``pip install 'alignuniform[hf]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch

from alignuniform.integrations import _common
from alignuniform.integrations.collapse import CollapseGuard, CollapseWarning, as_guard

_tf = _common.require("transformers", "hf", "alignuniform.integrations.hf")

__all__ = ["AlignUniformCallback", "CollapseGuard", "CollapseWarning", "default_embed"]

log = logging.getLogger(__name__)


def _device(model: Any) -> torch.device | None:
    if isinstance(getattr(model, "device", None), torch.device):
        return model.device
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return None


def default_embed(model: Any, batch: Any) -> torch.Tensor:
    """Embeddings of a batch of inputs.

    - a sentence-transformers model (anything with ``encode``): ``model.encode(batch)``;
    - otherwise ``model(**batch)`` for a dict of tensors (tokenizer output) or
      ``model(batch)``; a tensor output is used as is, else the mean of
      ``last_hidden_state`` over the attention mask.
    """
    if callable(getattr(model, "encode", None)):
        return model.encode(batch, convert_to_tensor=True, batch_size=len(batch),
                            show_progress_bar=False)
    batch = _common.move(batch, _device(model))
    out = model(**batch) if isinstance(batch, Mapping) else model(batch)
    if isinstance(out, torch.Tensor):
        return out
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    if mask is None:
        return hidden.mean(dim=1)
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


class AlignUniformCallback(_tf.TrainerCallback):  # type: ignore[name-defined]
    """Every ``every_n_steps`` optimizer steps, embed held-out positive pairs with the
    trainer's model and log ``align``, ``uniform``, ``uniform_bound`` and, with ``spectral``,
    ``rankme``, ``effective_rank``, ``stable_rank``, ``alpha_req`` and ``gaussian_w2`` of the
    embeddings of ``x`` (:func:`alignuniform.integrations._common.spectral_values`; NaN where
    the spectrum leaves one undefined), all with ``prefix``.

    A ``TrainerCallback`` cannot reach ``Trainer.log``, so bind the trainer with
    :meth:`attach` (or ``trainer=``): the values then go through ``trainer.log``, into
    ``trainer.state.log_history`` and to every reporting integration (TensorBoard, W&B...).
    Unbound, they are appended to ``state.log_history`` only (with a warning once).
    Under DDP each process embeds every ``world_size``-th pair and the shards are
    all-gathered, so every process holds the same values.

    With ``collapse`` (a :class:`~alignuniform.integrations.collapse.CollapseGuard`, or
    ``"warn"``/``"stop"`` for its default thresholds: uniformity under a fifth of its bound,
    or RankMe under 2), each evaluation also logs ``collapsed`` (1.0 or 0.0); when collapsed,
    the main process issues a :class:`~alignuniform.integrations.collapse.CollapseWarning`,
    and with ``action="stop"`` every process sets ``control.should_training_stop``, so
    training ends after this step.

    Args:
        pairs: ``(x, y)`` held-out inputs, ``y[i]`` the positive of ``x[i]``: lists of
            sentences for sentence-transformers, or tensors / dicts of tensors.
        every_n_steps: log every this many optimizer steps.
        t, alpha: uniformity kernel scale and alignment exponent.
        embed: ``embed(model, batch) -> (B, d) tensor``; default :func:`default_embed`.
        batch_size: inputs per ``embed`` call.
        prefix: prepended to the logged names (e.g. ``"eval_"``).
        trainer: the trainer to log through (or call :meth:`attach` later).
        uniformity_pairs: sample this many pairs for uniformity instead of all.
        spectral: also log the spectral metrics (one d x d eigendecomposition per
            evaluation). Off, RankMe is still computed (and logged) when ``collapse`` reads it.
        collapse: collapse detection: a ``CollapseGuard``, ``"warn"``, ``"stop"`` or ``None``.

    Attributes:
        history: one dict per evaluation: ``step`` and the logged values.
    """

    def __init__(
        self,
        pairs: tuple[Any, Any],
        every_n_steps: int = 100,
        t: float = 2.0,
        alpha: float = 2.0,
        embed: Callable[[Any, Any], torch.Tensor] | None = None,
        batch_size: int = 64,
        prefix: str = "",
        trainer: Any = None,
        uniformity_pairs: int | None = None,
        spectral: bool = True,
        collapse: CollapseGuard | str | None = None,
    ) -> None:
        self.pairs = _common.check_pairs(pairs)
        self.every_n_steps = _common.check_every(every_n_steps)
        self.t, self.alpha = float(t), float(alpha)
        self.embed = embed or default_embed
        self.batch_size = int(batch_size)
        self.prefix = prefix
        self.uniformity_pairs = uniformity_pairs
        self.spectral = bool(spectral)
        self.collapse = as_guard(collapse)
        self.trainer = None
        self.history: list[dict[str, float]] = []
        self._warned = False
        if trainer is not None:
            self.attach(trainer)

    def attach(self, trainer: Any) -> AlignUniformCallback:
        """Log through ``trainer.log``; adds the callback to the trainer if it is not in yet."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self.trainer = trainer
        return self

    def compute(self, args: Any, model: Any) -> dict[str, float]:
        """The values now, with prefix, ``collapsed`` left out (every process must call it
        under DDP)."""
        return {self.prefix + k: v for k, v in self._values(args, model).items()}

    def _values(self, args: Any, model: Any) -> dict[str, float]:
        world = int(getattr(args, "world_size", 1) or 1)
        values, _, _ = _common.held_out_values(
            model, self.pairs, self.embed, t=self.t, alpha=self.alpha,
            batch_size=self.batch_size, rank=int(getattr(args, "process_index", 0) or 0),
            world=world, all_gather=_common.torch_all_gather if world > 1 else None,
            uniformity_pairs=self.uniformity_pairs,
            spectral=_common.spectral_names(self.spectral, self.collapse),
        )
        return values

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step == 0 or step % self.every_n_steps or model is None:
            return control
        values = self._values(args, model)
        if _common.guard_step(self.collapse, values, step, bool(state.is_world_process_zero)):
            control.should_training_stop = True
        values = {self.prefix + k: v for k, v in values.items()}
        self.history.append({"step": step, **values})
        if self.trainer is not None:
            self.trainer.log(dict(values))
            return control
        if not self._warned and state.is_world_process_zero:
            log.warning(
                "AlignUniformCallback is not attached to its trainer: values go to "
                "state.log_history only; call callback.attach(trainer) to report them too"
            )
            self._warned = True
        state.log_history.append({**values, "epoch": state.epoch, "step": step})
        return control
