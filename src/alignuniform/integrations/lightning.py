"""Held-out alignment, uniformity and spectral metrics of a LightningModule, logged while it
trains, with optional collapse detection.

Examples:
    >>> from alignuniform.integrations.lightning import AlignUniformCallback
    >>> cb = AlignUniformCallback((x_val, x_val_positive), every_n_steps=100,
    ...                           collapse="stop")  # doctest: +SKIP
    >>> trainer = lightning.pytorch.Trainer(callbacks=[cb], ...)  # doctest: +SKIP
    >>> trainer.fit(module)  # doctest: +SKIP

Needs the ``lightning`` extra (``pip install 'alignuniform[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from alignuniform.integrations import _common
from alignuniform.integrations.collapse import CollapseGuard, CollapseWarning, as_guard

_pl = _common.require("lightning.pytorch", "lightning", "alignuniform.integrations.lightning")

__all__ = ["AlignUniformCallback", "CollapseGuard", "CollapseWarning"]


def default_embed(module: Any, batch: Any) -> torch.Tensor:
    """``module(batch)`` with the batch on the module's device."""
    return module(_common.move(batch, getattr(module, "device", None)))


class AlignUniformCallback(_pl.Callback):  # type: ignore[name-defined]
    """Every ``every_n_steps`` optimizer steps, embed held-out positive pairs with the
    LightningModule and log ``align``, ``uniform``, ``uniform_bound`` and, with ``spectral``,
    ``rankme``, ``effective_rank``, ``stable_rank``, ``alpha_req`` and ``gaussian_w2`` of the
    embeddings of ``x`` (:func:`alignuniform.integrations._common.spectral_values`; NaN where
    the spectrum leaves one undefined), all with ``prefix``.

    The values go to every logger of the trainer at the current ``global_step`` (whatever
    ``Trainer(log_every_n_steps=)`` is) and into ``trainer.callback_metrics``, so
    ``ModelCheckpoint(monitor="uniform")`` and ``EarlyStopping`` can use them. Under DDP
    each process embeds every ``world_size``-th pair and the shards are all-gathered, so
    every process holds the same values (computed once per pair, not once per process);
    loggers write on rank 0 only, as Lightning's loggers do.

    With ``collapse`` (a :class:`~alignuniform.integrations.collapse.CollapseGuard`, or
    ``"warn"``/``"stop"`` for its default thresholds: uniformity under a fifth of its bound,
    or RankMe under 2), each evaluation also logs ``collapsed`` (1.0 or 0.0); when collapsed,
    rank 0 issues a :class:`~alignuniform.integrations.collapse.CollapseWarning`, and with
    ``action="stop"`` every process sets ``trainer.should_stop``, so the fit ends after
    this step.

    Args:
        pairs: ``(x, y)``, held-out inputs where ``y[i]`` is the positive of ``x[i]``:
            tensors, lists or dicts of tensors (anything ``embed`` takes in batches).
        every_n_steps: log every this many optimizer steps.
        t, alpha: uniformity kernel scale and alignment exponent.
        embed: ``embed(module, batch) -> (B, d) tensor``; default ``module(batch)`` with the
            batch moved to the module's device. Embeddings are L2-normalised by the metrics.
        batch_size: inputs per ``embed`` call.
        prefix: prepended to the logged names (e.g. ``"val/"``).
        uniformity_pairs: sample this many pairs for uniformity instead of all
            (for held-out sets of more than ~50,000 items).
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
        batch_size: int = 256,
        prefix: str = "",
        uniformity_pairs: int | None = None,
        spectral: bool = True,
        collapse: CollapseGuard | str | None = None,
    ) -> None:
        super().__init__()
        self.pairs = _common.check_pairs(pairs)
        self.every_n_steps = _common.check_every(every_n_steps)
        self.t, self.alpha = float(t), float(alpha)
        self.embed = embed or default_embed
        self.batch_size = int(batch_size)
        self.prefix = prefix
        self.uniformity_pairs = uniformity_pairs
        self.spectral = bool(spectral)
        self.collapse = as_guard(collapse)
        self.history: list[dict[str, float]] = []
        self._last_step = -1

    def compute(self, trainer: Any, pl_module: Any) -> dict[str, float]:
        """The values now, with prefix, ``collapsed`` left out (every process must call it
        under DDP)."""
        return {self.prefix + k: v for k, v in self._values(trainer, pl_module).items()}

    def _values(self, trainer: Any, pl_module: Any) -> dict[str, float]:
        world = int(getattr(trainer, "world_size", 1))
        values, _, _ = _common.held_out_values(
            pl_module, self.pairs, self.embed, t=self.t, alpha=self.alpha,
            batch_size=self.batch_size, rank=int(getattr(trainer, "global_rank", 0)),
            world=world, all_gather=pl_module.all_gather if world > 1 else None,
            uniformity_pairs=self.uniformity_pairs,
            spectral=_common.spectral_names(self.spectral, self.collapse),
        )
        return values

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # once per optimizer step (gradient accumulation calls this hook several times)
        if step == 0 or step % self.every_n_steps or step == self._last_step:
            return
        self._last_step = step
        values = self._values(trainer, pl_module)
        if _common.guard_step(self.collapse, values, step, bool(trainer.is_global_zero)):
            trainer.should_stop = True
        values = {self.prefix + k: v for k, v in values.items()}
        self.history.append({"step": step, **values})
        for logger in trainer.loggers:  # Lightning's loggers write on rank 0 only
            logger.log_metrics(values, step=step)
        for k, v in values.items():
            trainer.callback_metrics[k] = torch.tensor(v)
