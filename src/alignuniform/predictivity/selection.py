"""Selection regret: how much accuracy is lost by keeping the encoder a metric prefers.

In each group of encoders (the checkpoints of one run, the settings of one sweep axis), the
metric picks its best encoder (the largest value when higher is better, e.g. RankMe; the
smallest when lower is better, e.g. uniformity); its regret is the best accuracy in the
group minus the picked encoder's (0 when the metric picks the best). Encoders tied on the
metric share the pick: its accuracy is their mean, the expectation of breaking the tie at
random. The no-information reference is a random pick: the best accuracy minus the group's
mean accuracy.

Examples:
    >>> out = selection_regret([1.0, 2.0, 3.0, 1.0, 5.0], [0.5, 0.7, 0.6, 0.9, 0.8],
    ...                        direction="higher", groups=["a", "a", "a", "b", "b"])
    >>> [round(g["regret"], 6) for g in out["groups"]], round(out["random_mean"], 6)
    ([0.1, 0.1], 0.075)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignuniform.predictivity.fits import as_vector

__all__ = ["DIRECTIONS", "selection_regret"]

#: How a metric says "better": the direction every metric of a predictivity table must give.
DIRECTIONS = ("higher", "lower")


def selection_regret(metric: Sequence[float] | np.ndarray, accuracy: Sequence[float] | np.ndarray,
                     *, direction: str, groups: Sequence[object] | np.ndarray | None = None
                     ) -> dict:
    """The regret of picking, in each group, the encoder the metric rates best.

    Args:
        metric, accuracy: One finite number per encoder (higher accuracy is better).
        direction: ``"higher"`` or ``"lower"``: which metric values are better.
        groups: One label per encoder (``None``: all encoders are one group). Groups of a
            single encoder are left out (any pick is the best).

    Returns:
        ``{"direction", "n_groups", "mean", "max", "random_mean", "random_max", "groups":
        [{"group", "n", "picked", "best", "regret", "random_regret"}, ...]}``, groups in
        order of first appearance; the summaries ``None`` when no group has 2 encoders.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    m, acc = as_vector(metric, "metric"), as_vector(accuracy, "accuracy")
    if len(m) != len(acc):
        raise ValueError(f"metric and accuracy have {len(m)} and {len(acc)} values")
    labels = np.zeros(len(m), dtype=np.int64) if groups is None else np.asarray(groups)
    if len(labels) != len(m):
        raise ValueError(f"groups has {len(labels)} labels for {len(m)} encoders")
    score = m if direction == "higher" else -m
    _, first = np.unique(labels, return_index=True)
    rows = []
    for g in labels[np.sort(first)]:
        idx = np.flatnonzero(labels == g)
        if len(idx) < 2:
            continue
        picked = float(acc[idx][score[idx] == score[idx].max()].mean())
        best = float(acc[idx].max())
        rows.append({"group": g.item() if isinstance(g, np.generic) else g, "n": len(idx),
                     "picked": picked, "best": best, "regret": best - picked,
                     "random_regret": best - float(acc[idx].mean())})
    regret = np.array([r["regret"] for r in rows])
    rand = np.array([r["random_regret"] for r in rows])
    return {"direction": direction, "n_groups": len(rows),
            "mean": float(regret.mean()) if rows else None,
            "max": float(regret.max()) if rows else None,
            "random_mean": float(rand.mean()) if rows else None,
            "random_max": float(rand.max()) if rows else None, "groups": rows}
