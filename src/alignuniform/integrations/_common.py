"""What both callbacks share: embed held-out positive pairs (sharded over processes), gather
them, and compute alignment, uniformity and the spectral metrics with
:mod:`alignuniform.metrics`."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from alignuniform import metrics
from alignuniform.integrations.collapse import CollapseGuard

#: the keys the callbacks always log
KEYS = ("align", "uniform", "uniform_bound")
#: the spectral metrics the callbacks log with ``spectral=True``
SPECTRAL_KEYS = ("rankme", "effective_rank", "stable_rank", "alpha_req", "gaussian_w2")


def require(module: str, extra: str, what: str):
    """Import ``module`` or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs {module.split('.')[0]}: pip install 'alignuniform[{extra}]'"
        ) from err


def length(inputs: Any) -> int:
    if isinstance(inputs, Mapping):
        return len(next(iter(inputs.values())))
    return len(inputs)


def take(inputs: Any, index: slice | Sequence[int]) -> Any:
    """Rows ``index`` of a tensor, a list (e.g. of sentences) or a dict of either."""
    if isinstance(inputs, Mapping):
        return {k: take(v, index) for k, v in inputs.items()}
    if isinstance(index, slice) or isinstance(inputs, torch.Tensor):
        return inputs[index]
    return [inputs[i] for i in index]


def check_pairs(pairs: Any) -> tuple[Any, Any]:
    if not (isinstance(pairs, (tuple, list)) and len(pairs) == 2):
        raise TypeError(
            "pairs must be (x, y): two equally long batches of inputs (tensors, lists of "
            "sentences, or dicts of tensors) where y[i] is the positive of x[i]"
        )
    x, y = pairs
    if length(x) != length(y):
        raise ValueError(f"pairs: x has {length(x)} items but y has {length(y)}")
    if length(x) < 2:
        raise ValueError("pairs: uniformity needs at least 2 held-out items")
    return x, y


def check_every(every_n_steps: int) -> int:
    if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
        raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
    return every_n_steps


def _embed_shard(
    embed: Callable[[Any, Any], torch.Tensor], model: Any, inputs: Any, rank: int, world: int,
    batch_size: int,
) -> torch.Tensor:
    mine = list(range(rank, length(inputs), world))
    parts = [embed(model, take(inputs, mine[s : s + batch_size]))
             for s in range(0, len(mine), batch_size)]
    return torch.cat([p.detach().float() for p in parts])


def gather_rows(
    local: torch.Tensor, n: int, rank: int, world: int,
    all_gather: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Reassemble rows ``rank, rank + world, ...`` held by each process into all ``n`` rows.

    ``all_gather`` maps a (m, d) tensor to the (world, m, d) stack of every process's.
    Shards differ by at most one row; each is padded to ``ceil(n / world)`` rows first.
    """
    if world == 1:
        return local
    m = math.ceil(n / world)
    pad = local.new_zeros(m - local.shape[0], *local.shape[1:])
    stacked = all_gather(torch.cat([local, pad]))  # (world, m, d); row k of rank r = r + k*world
    return stacked.transpose(0, 1).reshape(m * world, *local.shape[1:])[:n]


@torch.no_grad()
def held_out_values(
    model: Any,
    pairs: tuple[Any, Any],
    embed: Callable[[Any, Any], torch.Tensor],
    *,
    t: float,
    alpha: float,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    uniformity_pairs: int | None = None,
    spectral: Sequence[str] = (),
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """``{"align", "uniform", "uniform_bound"}`` and the ``spectral`` metrics (names from
    :data:`SPECTRAL_KEYS`, see :func:`spectral_values`) of the model's embeddings of ``pairs``.

    The model is put in eval mode and restored; each process embeds every ``world``-th
    pair and the shards are gathered, so every process returns the same values, computed on
    all the pairs. Alignment is over all pairs, uniformity over the embeddings of ``x``
    (exact unless ``uniformity_pairs``), both L2-normalised.

    Returns:
        ``(values, x embeddings, y embeddings)``.
    """
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        x, y = pairs
        n = length(x)
        ex = _embed_shard(embed, model, x, rank, world, batch_size)
        ey = _embed_shard(embed, model, y, rank, world, batch_size)
    finally:
        if was_training:
            model.train()
    if world > 1:
        if all_gather is None:
            raise ValueError("world > 1 needs all_gather")
        ex = gather_rows(ex, n, rank, world, all_gather)
        ey = gather_rows(ey, n, rank, world, all_gather)
    ex, ey = ex.cpu(), ey.cpu()
    uniform = metrics.uniformity(ex, t, n_pairs=uniformity_pairs)
    values = {
        "align": float(metrics.alignment(ex, ey, alpha=alpha)),
        "uniform": float(uniform),
        "uniform_bound": metrics.uniformity_bound(ex.shape[1], t),
        **spectral_values(ex, spectral),
    }
    return values, ex, ey


def spectral_values(z: torch.Tensor, names: Sequence[str] = SPECTRAL_KEYS) -> dict[str, float]:
    """The spectral metrics ``names`` of the (N, d) embeddings ``z``, by
    :mod:`alignuniform.metrics`' definitions: :func:`~alignuniform.metrics.rankme`,
    ``effective_rank``, ``stable_rank`` and ``alpha_req`` of the rows as embedded (not
    normalised), ``gaussian_w2`` (:func:`~alignuniform.metrics.gaussian_w2_uniformity`) of the
    L2-normalised rows. A metric the spectrum leaves undefined (alpha-ReQ or the ranks of
    collapsed embeddings, alpha-ReQ of fewer than 5 rows or 4 dimensions) is NaN, so that a
    training run keeps logging the same keys.

    Examples:
        >>> out = spectral_values(torch.eye(4), ("rankme", "stable_rank"))
        >>> round(out["rankme"], 3), round(out["stable_rank"], 3)
        (4.0, 3.0)
        >>> out = spectral_values(torch.ones(5, 3), ("rankme", "alpha_req"))  # one point
        >>> round(out["rankme"], 3), out["alpha_req"]
        (1.0, nan)
    """
    unknown = set(names) - set(SPECTRAL_KEYS)
    if unknown:
        raise ValueError(f"unknown spectral metrics {sorted(unknown)}; known: {SPECTRAL_KEYS}")
    if not names:
        return {}
    rows = metrics.SpectralState.of(z)
    compute = {
        "rankme": rows.rankme, "effective_rank": rows.effective_rank,
        "stable_rank": rows.stable_rank, "alpha_req": rows.alpha_req,
        "gaussian_w2": lambda: metrics.gaussian_w2_uniformity(z),
    }
    out = {}
    for name in names:
        try:
            out[name] = float(compute[name]())
        except ValueError:  # undefined for this spectrum (see each metric's Raises)
            out[name] = math.nan
    return out


def spectral_names(spectral: bool, guard: CollapseGuard | None) -> tuple[str, ...]:
    """The spectral metrics a callback computes: all with ``spectral``, else RankMe alone
    when its collapse guard reads it."""
    if spectral:
        return SPECTRAL_KEYS
    return ("rankme",) if guard is not None and guard.needs_rankme else ()


def guard_step(
    guard: CollapseGuard | None, values: dict[str, float], step: int, main_process: bool
) -> bool:
    """Apply a callback's collapse guard to its unprefixed ``values`` at ``step``: add
    ``collapsed`` (1.0 or 0.0), warn if collapsed; whether training should stop."""
    if guard is None:
        return False
    why = guard.check(values, step, main_process=main_process)
    values["collapsed"] = float(why is not None)
    return why is not None and guard.action == "stop"


def torch_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """``torch.distributed.all_gather`` of equally shaped tensors, stacked."""
    import torch.distributed as dist

    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor.contiguous())
    return torch.stack(out)


def move(batch: Any, device: torch.device | str | None) -> Any:
    """A tensor or dict of tensors on ``device`` (other inputs unchanged)."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move(v, device) for k, v in batch.items()}
    return batch
