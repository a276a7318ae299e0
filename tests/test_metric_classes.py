"""The torchmetrics classes the way torchmetrics tests its own (``metric_tester``), and the
sampled ``Uniformity`` through ``forward`` and ``merge_state``."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alignuniform import metrics
from tests.helpers import ref_align, ref_uniform

from . import metric_tester as mt

N_ROWS = mt.NUM_BATCHES * mt.BATCH_SIZE


def _batches(n_views: int, scale: float, seed: int) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    views = [scale * torch.randn(N_ROWS, 5, generator=g) for _ in range(n_views)]
    return [tuple(v[b : b + mt.BATCH_SIZE] for v in views)
            for b in range(0, N_ROWS, mt.BATCH_SIZE)]


def _align_ref(alpha: float, normalize: bool, x: np.ndarray, y: np.ndarray) -> float:
    x, y = mt.normalised(x, y) if normalize else (x, y)
    return float(ref_align(x, y, alpha))


def _unif_ref(t: float, normalize: bool, x: np.ndarray) -> float:
    (x,) = mt.normalised(x) if normalize else (x,)
    return ref_uniform(x, t)


def make_cases() -> list[mt.Case]:
    cases = []
    for alpha, normalize in ((2.0, True), (1.5, False)):
        cases.append(mt.Case(
            f"Alignment(alpha={alpha}, normalize={normalize})",
            partial(metrics.Alignment, alpha=alpha, normalize=normalize),
            _batches(2, 3.0 if normalize else 0.5, 1),
            partial(_align_ref, alpha, normalize),
            lambda x, y, a=alpha, n=normalize: metrics.alignment(x, y, a, normalize=n),
        ))
    for t, normalize, max_rows in ((2.0, True, None), (0.5, False, None), (3.0, True, N_ROWS)):
        cases.append(mt.Case(
            f"Uniformity(t={t}, normalize={normalize}, max_rows={max_rows})",
            partial(metrics.Uniformity, t=t, normalize=normalize, max_rows=max_rows,
                    block_size=16),
            _batches(1, 3.0 if normalize else 0.5, 2),
            partial(_unif_ref, t, normalize),
            lambda x, t=t, n=normalize: metrics.uniformity(x, t, normalize=n),
            max_held=None if max_rows is None else 2 * max_rows,
        ))
    return cases


CASES = make_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_functional_batch_by_batch(case):
    mt.check_functional(case)


def test_classes_in_one_process():
    results = mt.run_all(CASES, rank=0, world=1)
    for case in CASES:
        mt.check(case, results, rank=0, world=1)


def test_classes_in_two_gloo_processes():
    results = mt.run_ddp(make_cases, world=2)
    for rank in range(2):
        for case in CASES:
            mt.check(case, results[rank], rank=rank, world=2)


def test_the_tester_can_fail():
    # a metric that is right on one process but ignores the others must be caught
    wrong = mt.run_all(CASES[:1], rank=0, world=2)  # rank 0's half only, never synced
    with pytest.raises(AssertionError):
        mt.check(CASES[0], wrong, rank=0, world=2)


# ---- the sampled mode through forward and merge_state ---------------------------------


def _noisy_passes(seed: int = 0) -> list[torch.Tensor]:
    """32 items seen in 8 noisy passes: a row's position in its batch names its item."""
    g = torch.Generator().manual_seed(seed)
    items = F.normalize(torch.randn(32, 16, generator=g), dim=1)
    return [items + 0.05 * torch.randn(32, 16, generator=g) for _ in range(8)]


def _mean_estimate(feed, exact: float, seeds: int = 30) -> tuple[float, float]:
    """Mean over seeds of the sampled pair mean exp(value), and its standard error."""
    values = []
    for seed in range(seeds):
        m = metrics.Uniformity(max_rows=8, seed=seed)
        feed(m)
        values.append(math.exp(m.compute().item()))
    return float(np.mean(values)), float(np.std(values) / math.sqrt(seeds))


@pytest.mark.parametrize("through", ["forward", "update"])
def test_sampled_uniformity_is_unbiased_through_forward_and_update(through):
    # forward resets the state before each batch: keys seeded by the update count restarted
    # and every batch kept the same positions, i.e. the same 8 items (-0.007 vs -2.85)
    passes = _noisy_passes()
    exact = metrics.uniformity(torch.cat(passes))

    def feed(m):
        for p in passes:
            m(p) if through == "forward" else m.update(p)
            assert sum(r.shape[0] for r in m.rows) <= 16  # 2 max_rows

    mean, se = _mean_estimate(feed, exact)
    assert abs(mean - math.exp(exact)) < 4 * se + 1e-3


def test_forward_keeps_the_memory_bound():
    # rows were pruned per batch, then appended to the held ones unpruned: 8 per pass here
    passes = _noisy_passes(1)
    m = metrics.Uniformity(max_rows=4, seed=3)
    for p in passes:
        m(p)
        assert sum(r.shape[0] for r in m.rows) <= 8
        assert sum(k.shape[0] for k in m.keys) <= 8
    rows, every = m.subset(), F.normalize(torch.cat(passes), dim=1)
    assert rows.shape == (4, 16) and m.seen.item() == 256
    assert all(torch.isclose(every, r, rtol=0, atol=1e-6).all(1).any() for r in rows)


def test_merged_shards_draw_independent_keys():
    # two shards on one process, here fed the same rows: with identical keys the bottom-K
    # of the union kept both copies of every row it kept
    passes = _noisy_passes(2)
    union = torch.cat(passes + passes)
    exact = metrics.uniformity(union)

    def feed(m):
        other = metrics.Uniformity(max_rows=8, seed=m.seed)
        for p in passes:
            m.update(p)
            other.update(p)
        m.merge_state(other)
        assert not torch.isin(torch.cat(m.keys), torch.cat(other.keys)).all()
        assert sum(r.shape[0] for r in m.rows) <= 16

    mean, se = _mean_estimate(feed, exact)
    assert abs(mean - math.exp(exact)) < 4 * se + 1e-3


def test_a_change_of_dimension_is_refused_however_it_arrives():
    x = torch.randn(10, 6)
    for metric, args in (
        (metrics.Uniformity(), (x,)), (metrics.Uniformity(max_rows=4), (x,)),
        (metrics.Alignment(), (x, x.flip(0))),
    ):
        name = type(metric).__name__
        metric(*args)
        narrow = tuple(a[:, :4] for a in args)
        with pytest.raises(ValueError, match=f"{name}: x has 4 dimensions but earlier .* had 6"):
            metric(*narrow)  # forward
        with pytest.raises(ValueError, match="x has 4 dimensions"):
            metric.update(*narrow)
        other = type(metric)(**({"max_rows": metric.max_rows} if name == "Uniformity" else {}))
        other.update(*narrow)
        with pytest.raises(ValueError, match="the merged state has 4 dimensions but .* had 6"):
            metric.merge_state(other)
        if name == "Uniformity":
            with pytest.raises(ValueError, match="merged state has 4 dimensions"):
                metric.merge_state({k: v for k, v in other.metric_state.items()})
        metric.reset()  # a reset forgets the width
        metric(*narrow)
        assert metric.compute().isfinite()


def test_exact_and_sampled_states_do_not_merge():
    a, b = metrics.Uniformity(), metrics.Uniformity(max_rows=4)
    a.update(torch.randn(6, 3))
    b.update(torch.randn(6, 3))
    with pytest.raises(ValueError, match="exact-mode state"):
        b.merge_state(a)
