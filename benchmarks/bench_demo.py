"""The demo's hot spots on the CPU: MNIST-1D generation, the per-sample two-view recipe, and one
training step of the 1-D CNN (both views of a 256-sequence batch in one pass) at two widths.

Each timing is the median of a few repeats after a warm-up, in this process.
"""

from __future__ import annotations

import statistics
import time

import torch

from alignuniform import LossCombination
from alignuniform.data.mnist1d import MNIST1D, _generate, mnist1d_view
from alignuniform.models.conv1d import Conv1dEncoder

BATCH = 256
REPEATS = 5


def _median_s(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _train_step(batch: torch.Tensor, width: int):
    """One SGD step of L_align + L_uniform on two views of ``batch``, as a closure."""
    torch.manual_seed(0)
    model = Conv1dEncoder(feat_dim=2, pool="max", width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = LossCombination(w_align=1.0, w_uniform=1.0)
    views = torch.cat([batch, batch.roll(1, dims=-1)])

    def step() -> None:
        out = criterion(*model(views).chunk(2))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    return step


def run() -> list[dict]:
    rows = []
    start = time.perf_counter()
    _generate.cache_clear()
    data = MNIST1D("train", n_train=4000, n_test=1000, n_val=0, seed=0)
    rows.append({"what": "generate MNIST-1D (5,000 sequences)", "seconds": time.perf_counter()
                 - start})
    x = data.data[0]
    per_view = _median_s(lambda: [mnist1d_view(x) for _ in range(2 * BATCH)]) / (2 * BATCH)
    rows.append({"what": "mnist1d_view, one view", "microseconds": per_view * 1e6})
    batch = data.data[:BATCH]
    for width in (16, 32):
        rows.append({"what": f"conv1d width {width}: train step, {BATCH} pairs",
                     "milliseconds": _median_s(_train_step(batch, width)) * 1e3,
                     "views_ms": per_view * 2 * BATCH * 1e3})
    return rows
