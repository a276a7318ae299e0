"""The label-free spectral metrics of one set of embeddings, as the numbers a result file
holds: ``measure.json``, each layer of ``eval.json`` and so each sweep row.

The values come from :mod:`alignuniform.metrics` (RankMe, effective and stable rank,
alpha-ReQ, the Gaussian W2 uniformity, LiDAR) with their default settings; this module only
composes them. A metric the spectrum leaves undefined (alpha-ReQ of a collapsed spectrum,
any rank of all-equal rows, LiDAR when every sample's views share one mean) is ``None``,
with the reason, so that one degenerate encoder does not fail a whole evaluation.

Examples:
    >>> import torch
    >>> from alignuniform.evaluate.spectral_numbers import spectral_numbers_of
    >>> _ = torch.manual_seed(0)
    >>> values, reasons = spectral_numbers_of(torch.randn(4_000, 8))
    >>> round(values["rankme"], 2), round(values["stable_rank"], 1), values["lidar"]
    (8.0, 7.4, None)
    >>> collapsed = torch.randn(100, 1) @ torch.randn(1, 8)   # rank 1
    >>> values, reasons = spectral_numbers_of(collapsed)
    >>> values["alpha_req"], "collapsed" in reasons["alpha_req"]
    (None, True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from alignuniform.metrics import LidarState, SpectralState

__all__ = ["SPECTRAL_KEYS", "spectral_numbers", "spectral_numbers_of"]

#: the keys :func:`spectral_numbers` returns, in the order result files list them
SPECTRAL_KEYS = ("rankme", "effective_rank", "stable_rank", "alpha_req", "gaussian_w2", "lidar")


def spectral_numbers(
    state: SpectralState, sphere: SpectralState, views: LidarState | None = None
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Every metric of :data:`SPECTRAL_KEYS` from streamed states.

    Args:
        state: the rows as measured: RankMe (not centred, singular values), effective rank,
            stable rank and alpha-ReQ (default fit range) are of these.
        sphere: the same rows with ``normalize=True`` (``state`` itself when it normalises),
            for the W2 uniformity, which is defined on the sphere.
        views: the (n, q, d) views' state for LiDAR (``delta=1e-4``, ``eps=1e-8``); without
            it ``lidar`` is None and no reason is given.

    Returns:
        ``(values, reasons)``: a value (or None) for every key, and for each None computed
        from a degenerate spectrum the ``ValueError`` message that explains it.
    """
    if not sphere.normalize:
        raise ValueError("sphere must be a SpectralState with normalize=True")
    calls: dict[str, Callable[[], float]] = {
        "rankme": state.rankme, "effective_rank": state.effective_rank,
        "stable_rank": state.stable_rank, "alpha_req": state.alpha_req,
        "gaussian_w2": sphere.gaussian_w2,
    }
    if views is not None:
        calls["lidar"] = views.lidar
    values: dict[str, float | None] = dict.fromkeys(SPECTRAL_KEYS)
    reasons: dict[str, str] = {}
    for key, call in calls.items():
        try:
            values[key] = call()
        except ValueError as err:
            reasons[key] = str(err)
    return values, reasons


def spectral_numbers_of(
    x: torch.Tensor, lidar: LidarState | None = None
) -> tuple[dict[str, float | None], dict[str, str]]:
    """:func:`spectral_numbers` of (N, d) features in memory, and LiDAR from a streamed
    state (e.g. :func:`alignuniform.evaluate.heldout_alignments_and_lidar`'s).

    Unlike the :mod:`alignuniform.metrics` functions this does not refuse bad features:
    NaN/Inf values or fewer than 2 rows (a diverged encoder in a sweep) give None with that
    reason for every metric, so the rest of an evaluation still comes out.
    """
    state = SpectralState(x.shape[1], device=x.device)
    sphere = SpectralState(x.shape[1], normalize=True, device=x.device)
    state.update(x)
    sphere.update(x)
    return spectral_numbers(state, sphere, lidar)
