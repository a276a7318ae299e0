"""Metrics against brute-force loops, closed forms and numerical integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special

from alignuniform import metrics
from tests.helpers import ref_align, ref_uniform, sphere


def test_alignment_normalises_by_default_and_matches_loop():
    g = torch.Generator().manual_seed(0)
    x, y = (
        5 * torch.randn(20, 6, generator=g, dtype=torch.float64),
        torch.randn(20, 6, generator=g, dtype=torch.float64),
    )
    xn, yn = F.normalize(x, dim=1).numpy(), F.normalize(y, dim=1).numpy()
    assert metrics.alignment(x, y) == pytest.approx(ref_align(xn, yn, 2), rel=1e-12)
    assert metrics.alignment(x, y, alpha=1) == pytest.approx(ref_align(xn, yn, 1), rel=1e-12)
    assert metrics.alignment(x, y, normalize=False) == pytest.approx(
        ref_align(x.numpy(), y.numpy(), 2), rel=1e-12
    )
    assert isinstance(metrics.alignment(x, y), float)


def test_uniformity_exact_matches_loop_and_normalises():
    x = 3 * sphere(40, 5, 1)
    assert metrics.uniformity(x, t=1.5, block_size=7) == pytest.approx(
        ref_uniform(F.normalize(x, dim=1).numpy(), 1.5), rel=1e-12
    )
    assert metrics.uniformity(x, t=0.1, normalize=False) == pytest.approx(
        ref_uniform(x.numpy(), 0.1), rel=1e-10
    )


def test_uniformity_float32_is_accumulated_precisely():
    x64 = sphere(5000, 16, 2)
    exact = metrics.uniformity(x64)
    assert metrics.uniformity(x64.float(), block_size=512) == pytest.approx(exact, rel=1e-6)


def _random_batches(n: int, gen: torch.Generator) -> list[slice]:
    cuts = sorted(torch.randperm(n - 1, generator=gen)[:4].add(1).tolist())
    return [slice(a, b) for a, b in zip([0, *cuts], [*cuts, n], strict=True)]


@pytest.mark.parametrize("seed", range(4))
def test_metric_classes_equal_the_functions_over_random_batch_splits(seed):
    g = torch.Generator().manual_seed(seed)
    x, y = 3 * sphere(300, 8, 3 + seed), sphere(300, 8, 40 + seed)
    batches = _random_batches(300, g)
    align, unif = metrics.Alignment(alpha=1.5), metrics.Uniformity(t=3.0, block_size=64)
    for b in batches:
        align.update(x[b], y[b])
        unif.update(x[b])
    assert align.compute().item() == pytest.approx(metrics.alignment(x, y, 1.5), rel=1e-12)
    assert unif.compute().item() == pytest.approx(metrics.uniformity(x, 3.0), rel=1e-12)
    # merge_state, as for states coming from elsewhere: two halves equal the whole
    a2, u2 = metrics.Alignment(alpha=1.5), metrics.Uniformity(t=3.0)
    a1, u1 = metrics.Alignment(alpha=1.5), metrics.Uniformity(t=3.0)
    a1.update(x[:100], y[:100]), u1.update(x[:100])
    a2.update(x[100:], y[100:]), u2.update(x[100:])
    a1.merge_state(a2), u1.merge_state(u2)
    assert a1.compute().item() == pytest.approx(metrics.alignment(x, y, 1.5), rel=1e-12)
    empty = metrics.Alignment(alpha=1.5)  # filled by merge_state alone
    empty.merge_state(a1)
    assert empty.compute().item() == pytest.approx(metrics.alignment(x, y, 1.5), rel=1e-12)
    assert u1.compute().item() == pytest.approx(metrics.uniformity(x, 3.0), rel=1e-12)
    # reset forgets everything
    align.reset(), unif.reset()
    align.update(x[:50], y[:50]), unif.update(x[:50, :4])
    assert align.compute().item() == pytest.approx(metrics.alignment(x[:50], y[:50], 1.5))
    assert unif.compute().item() == pytest.approx(metrics.uniformity(x[:50, :4], 3.0))


def test_forward_and_metric_collection_give_batch_and_epoch_values():
    from torchmetrics import MetricCollection

    x, y = sphere(120, 6, 50), sphere(120, 6, 51)
    both = MetricCollection({"align": metrics.Alignment(), "align1": metrics.Alignment(alpha=1)})
    unif = metrics.Uniformity()
    for b in (slice(0, 50), slice(50, 120)):
        batch = both(x[b], y[b])  # forward: this batch's values, and the state accumulates
        assert batch["align"].item() == pytest.approx(metrics.alignment(x[b], y[b]))
        assert unif(x[b]).item() == pytest.approx(metrics.uniformity(x[b]), rel=1e-12)
    epoch = both.compute()
    assert epoch["align"].item() == pytest.approx(metrics.alignment(x, y), rel=1e-12)
    assert epoch["align1"].item() == pytest.approx(metrics.alignment(x, y, 1), rel=1e-12)
    assert unif.compute().item() == pytest.approx(metrics.uniformity(x), rel=1e-12)


def test_metric_update_never_reads_values_on_the_host(monkeypatch):
    # on a GPU, reading a value (bool, int, float, item) waits for the device: update must not
    metrics.Uniformity(max_rows=16).update(sphere(4, 3, 52))  # warm-up outside the patch
    x, y = sphere(40, 5, 52), sphere(40, 5, 53)
    align, exact = metrics.Alignment(), metrics.Uniformity()
    sampled = metrics.Uniformity(max_rows=16)

    def refuse(*args, **kwargs):
        raise AssertionError("a host read inside update()")

    for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for b in (slice(0, 20), slice(20, 40)):
        align.update(x[b], y[b])
        exact.update(x[b])
        sampled.update(x[b])
    monkeypatch.undo()
    assert align.compute().item() == pytest.approx(metrics.alignment(x, y), rel=1e-12)
    assert exact.compute().item() == pytest.approx(metrics.uniformity(x), rel=1e-12)


def test_sampled_uniformity_metric_is_exact_until_full_then_an_unbiased_subset():
    # rows arrive sorted: a tight cluster first, spread rows after. Keeping the first or the
    # last K rows, or sampling per batch unevenly, would be far off
    x = torch.cat([0.05 * sphere(200, 6, 54) + sphere(1, 6, 55), sphere(200, 6, 56)])
    x = F.normalize(x, dim=1)
    exact = metrics.uniformity(x)
    small = metrics.Uniformity(max_rows=400)
    for b in range(0, 400, 64):
        small.update(x[b : b + 64])
    assert small.compute().item() == pytest.approx(exact, rel=1e-12)
    means = []
    for seed in range(60):
        m = metrics.Uniformity(max_rows=60, seed=seed)
        for b in range(0, 400, 64):
            m.update(x[b : b + 64])
        kept = m.subset()
        assert kept.shape == (60, 6)
        # every kept row is a row of x, each at most once
        match = torch.cdist(kept, x).argmin(1)
        assert torch.allclose(kept, x[match]) and len(set(match.tolist())) == 60
        means.append(math.exp(m.compute().item()))
    # the pair mean over a uniform random subset is unbiased for the pair mean over all rows
    se = np.std(means) / math.sqrt(len(means))
    assert abs(np.mean(means) - math.exp(exact)) < 4 * se
    assert m.seen.item() == 400


def test_metric_classes_refuse_bad_rows_at_compute():
    x = sphere(10, 4, 57).float()
    for metric, args in (
        (metrics.Alignment(), (x, x.index_fill(0, torch.tensor([3]), float("nan")))),
        (metrics.Uniformity(), (x.index_fill(0, torch.tensor([3, 5]), 0.0),)),
        (metrics.Uniformity(max_rows=4), (x.index_fill(0, torch.tensor([3]), float("inf")),)),
    ):
        metric.update(*args)
        with pytest.raises(ValueError, match=r"\d rows given to update\(\) were NaN/Inf"):
            metric.compute()
    with pytest.raises(ValueError, match="max_rows"):
        metrics.Uniformity(max_rows=1)
    u = metrics.Uniformity()
    u.update(x)
    with pytest.raises(ValueError, match="3 dimensions but earlier batches had 4"):
        u.update(x[:, :3])


def test_sampled_uniformity_interval_covers_exact_value():
    x = sphere(3000, 8, 5)
    exact = metrics.uniformity(x)
    est = metrics.uniformity(x, n_pairs=200_000, seed=1)
    assert isinstance(est, metrics.UniformityEstimate)
    assert est.low < exact < est.high
    assert est.low < float(est) < est.high
    assert abs(float(est) - exact) < 0.01
    # a seeded estimate is reproducible
    assert metrics.uniformity(x, n_pairs=200_000, seed=1) == est


@pytest.fixture(scope="module")
def cloud_2000x64() -> torch.Tensor:
    return sphere(2000, 64, 41, torch.float32)


@pytest.mark.parametrize("t,max_width", [(2.0, 0.1), (30.0, math.inf), (50.0, math.inf)])
def test_sampled_interval_covers_the_exact_value_at_large_t(cloud_2000x64, t, max_width):
    # at t = 30 and 50 the pair mean is dominated by a few close pairs that a sample of
    # 20,000 of the 2 million usually misses: the normal interval covered 12/40 and 2/40
    exact = metrics.uniformity(cloud_2000x64, t=t)
    estimates = [metrics.uniformity(cloud_2000x64, t=t, n_pairs=20_000, seed=s) for s in range(40)]
    coverage = sum(e.low <= exact <= e.high for e in estimates) / len(estimates)
    assert coverage >= 0.9 * 0.95
    assert all(e.low <= e.value <= e.high for e in estimates)
    # and it is not trivially wide where the sample does pin the value down (normal: 0.015)
    assert np.mean([e.high - e.low for e in estimates]) < max_width


@pytest.mark.parametrize("dim,t,value", [(128, 2.0, -3.9375), (2, 2.0, -1.5750)])
def test_uniformity_bound_published_values(dim, t, value):
    assert metrics.uniformity_bound(dim, t) == pytest.approx(value, abs=5e-5)


def bound_by_integral(dim: int, t: float) -> float:
    """-log of nothing fancy: E exp(-t(2 - 2s)) with s = u.v, density prop. to (1-s^2)^((m-3)/2)."""
    k = (dim - 3) / 2
    dens = lambda s: (1 - s * s) ** k  # noqa: E731
    num = integrate.quad(
        lambda s: math.exp(-t * (2 - 2 * s)) * dens(s), -1, 1, epsabs=0, epsrel=1e-13
    )[0]
    den = integrate.quad(dens, -1, 1, epsabs=0, epsrel=1e-13)[0]
    return math.log(num / den)


@pytest.mark.parametrize("dim", [3, 4, 8, 32, 128])
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_bound_matches_numerical_integral(dim, t):
    assert metrics.uniformity_bound(dim, t) == pytest.approx(bound_by_integral(dim, t), abs=1e-6)


def test_uniformity_bound_bessel_branch_agrees_and_extends():
    # where 0F1 is finite both forms must agree; the Bessel form is used where it overflows
    for dim, t in [(16, 3.0), (64, 10.0)]:
        nu = dim / 2 - 1
        bessel = special.gammaln(dim / 2) - nu * math.log(t) + math.log(special.ive(nu, 2 * t))
        assert metrics.uniformity_bound(dim, t) == pytest.approx(bessel, abs=1e-9)
    big = metrics.uniformity_bound(3, 400.0)
    assert math.isfinite(big) and big == pytest.approx(
        -math.log(4 * 400.0), abs=1e-3
    )  # -log(4t) as t grows on S^2


def test_uniform_samples_approach_the_bound():
    bound = metrics.uniformity_bound(16)
    gaps = [
        abs(metrics.uniformity(sphere(n, 16, 7, torch.float32)) - bound) for n in (100, 1000, 8000)
    ]
    assert gaps[-1] < 0.01
    assert gaps[-1] < gaps[0]


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: metrics.uniformity(torch.ones(1, 3)), ValueError, "at least 2 rows"),
        (lambda: metrics.uniformity(torch.ones(3, 3), t=0), ValueError, "t must be"),
        (lambda: metrics.uniformity(torch.ones(3, 3), n_pairs=1), ValueError, "n_pairs"),
        (lambda: metrics.uniformity(torch.ones(3, 3), n_pairs=1e5), ValueError, "integer"),
        (lambda: metrics.alignment(torch.ones(3, 3), torch.ones(2, 3)), ValueError, "same shape"),
        (lambda: metrics.uniformity_bound(0), ValueError, "dim"),
        (lambda: metrics.uniformity_bound(2.5), ValueError, "dim"),
        (lambda: metrics.Uniformity(max_rows=8).compute(), ValueError, "before any update"),
        (lambda: metrics.Alignment().compute(), ValueError, "before any update"),
        (lambda: metrics.uniformity(torch.eye(3).index_fill(0, torch.tensor([1]), 0.0)),
         ValueError, "row 1 of x is zero .*normalize=False"),
        (lambda: metrics.alignment(torch.eye(3), torch.zeros(3, 3)), ValueError,
         r"row 0 of y \(and 2 more\) is zero"),
        (lambda: metrics.uniformity(torch.eye(3), t=torch.tensor([2.0])), ValueError, "0-d"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_zero_rows_are_measured_as_given_without_normalisation():
    x = torch.eye(4, dtype=torch.float64).index_fill(0, torch.tensor([0]), 0.0)
    assert metrics.uniformity(x, normalize=False) == pytest.approx(ref_uniform(x.numpy(), 2))
    assert metrics.uniformity(torch.eye(4), t=torch.tensor(2.0)) == pytest.approx(-4.0)


def _sync_worker(rank: int, world: int, port: int, x: torch.Tensor, y: torch.Tensor, out):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        rows = slice(rank * len(x) // world, (rank + 1) * len(x) // world)  # uneven: 50 | 51
        u, a = metrics.Uniformity(), metrics.Alignment()
        full, sub = metrics.Uniformity(max_rows=len(x)), metrics.Uniformity(max_rows=30)
        for b in range(rows.start, rows.stop, 16):  # several updates per process
            b = slice(b, min(b + 16, rows.stop))
            for m in (u, full, sub):
                m.update(x[b])
            a.update(x[b], y[b])
        # compute() syncs through torchmetrics; a second compute must not double-count
        values = [m.compute().item() for m in (u, a, full, sub)]
        out[rank] = (values, u.compute().item(), sum(r.shape[0] for r in sub.rows))
    finally:
        dist.destroy_process_group()


def test_metric_sync_across_two_processes_equals_one_process():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x, y = sphere(101, 6, 8, torch.float32), sphere(101, 6, 9, torch.float32)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_sync_worker, args=(2, port, x, y, out), nprocs=2)
        results = dict(out)
    exact = metrics.uniformity(x)
    for rank in range(2):
        (u, a, full, sub), again, kept = results[rank]
        assert u == pytest.approx(exact, abs=1e-6) and again == u
        assert a == pytest.approx(metrics.alignment(x, y), abs=1e-6)
        assert full == pytest.approx(exact, abs=1e-6)  # sampled mode, every row kept
        assert 30 <= kept <= 60  # each process holds at most 2 max_rows
    # the sampled mode's merged subset is the same on both processes
    assert results[0][0][3] == results[1][0][3]


def test_numpy_reference_helpers_are_sane():
    # guards the references themselves: two orthogonal unit vectors
    e = np.eye(2)
    assert ref_align(e, e[::-1], 2) == pytest.approx(2.0)
    assert ref_uniform(e, 1.0) == pytest.approx(-2.0)



def ref_log_uniform(x: np.ndarray, t: float) -> float:
    """Float64 loop over pairs in log space: no term underflows, however far apart."""
    exps = [-t * np.sum((x[i] - x[j]) ** 2) for i in range(len(x)) for j in range(i + 1, len(x))]
    return float(special.logsumexp(exps) - math.log(len(exps)))


@pytest.mark.parametrize("normalize", [True, False])
def test_sampled_uniformity_works_in_log_space_where_every_term_underflows(normalize):
    # t = 30 on the sphere, or on raw features of norm 10-100 (no normalisation): exp(-t d^2)
    # underflows to 0 for most or all pairs, and the log of the pair mean must still be right
    t, g = 30.0, torch.Generator().manual_seed(40)
    x = sphere(100, 8, 40, torch.float32)
    if not normalize:
        x = x * torch.empty(100, 1).uniform_(10, 100, generator=g)
    ref = ref_log_uniform(F.normalize(x, dim=1).double().numpy() if normalize
                          else x.double().numpy(), t)
    exact = metrics.uniformity(x, t=t, normalize=normalize)
    assert exact == pytest.approx(ref, rel=1e-5)
    # 4950 pairs drawn 400,000 times: every pair is seen about 80 times
    est = metrics.uniformity(x, t=t, normalize=normalize, n_pairs=400_000, seed=2)
    assert math.isfinite(est.value) and est.low <= est.value <= est.high
    assert est.low <= exact <= est.high
    assert est.value == pytest.approx(exact, abs=0.3)


def test_metrics_log_through_lightning_at_epoch_end(tmp_path):
    lightning = pytest.importorskip("lightning")

    g = torch.Generator().manual_seed(60)
    data = torch.utils.data.TensorDataset(torch.randn(70, 5, generator=g))

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(5, 4)
            self.align, self.unif = metrics.Alignment(), metrics.Uniformity(max_rows=1000)

        def validation_step(self, batch, _):
            (v,) = batch
            x, y = self.net(v), self.net(v + 0.1)
            self.align.update(x, y)
            self.unif.update(x)
            self.log("align", self.align, on_epoch=True)
            self.log("uniform", self.unif, on_epoch=True)

    module = Module()
    trainer = lightning.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    for _ in range(2):  # the state is reset between epochs: the second run equals the first
        logged = trainer.validate(module, loader, verbose=False)[0]
        with torch.no_grad():
            x, y = module.net(data.tensors[0]), module.net(data.tensors[0] + 0.1)
        assert logged["align"] == pytest.approx(metrics.alignment(x, y), rel=1e-6)
        assert logged["uniform"] == pytest.approx(metrics.uniformity(x), rel=1e-6)
