"""A MetricTester for this project's torchmetrics classes, after torchmetrics' own
(``tests/unittests/_helpers/testers.py`` in Lightning-AI/torchmetrics).

Like that harness it feeds ``NUM_BATCHES`` batches to a metric class, rank ``r`` of
``world`` processes taking batches ``r, r + world, ...``, through ``forward`` (the batch
value is checked at every step: this process's batch, or with ``dist_sync_on_step`` every
process's batch of that step) or through ``update``, then checks ``compute`` over every
batch of every process, against a float64 brute-force reference. It also checks the
functional form batch by batch, that ``compute`` is stable when called twice, that a
pickled metric computes the same, and (for a sampled ``Uniformity``) that no more than
``2 max_rows`` rows are ever held. The 2-process runs use gloo in spawned processes, all
cases in one spawn, so that the processes' start-up is paid once.
"""

from __future__ import annotations

import pickle
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

NUM_BATCHES = 8
BATCH_SIZE = 8


@dataclass(frozen=True)
class Case:
    """One metric configuration: how to build it, its batches, and its references.

    ``batches[i]`` is the tuple of arguments of the i-th ``update``; ``reference`` takes
    those arguments concatenated over any set of batches (float64 numpy arrays) and returns
    the metric's value on them; ``functional`` is the library function on one batch.
    """

    name: str
    make: Callable[..., Any]
    batches: Sequence[tuple[torch.Tensor, ...]]
    reference: Callable[..., float]
    functional: Callable[..., float]
    atol: float = 1e-6
    max_held: int | None = None  # the most rows a sampled metric may hold
    kwargs: dict[str, Any] = field(default_factory=dict)


def reference_on(case: Case, indices: Sequence[int]) -> float:
    """The reference over the batches ``indices``, concatenated."""
    parts = zip(*(case.batches[i] for i in indices), strict=True)
    return case.reference(*(torch.cat(p).double().numpy() for p in parts))


def _held(metric: Any) -> int:
    rows = metric.rows
    return sum(r.shape[0] for r in rows) if isinstance(rows, list) else rows.shape[0]


def run_class(case: Case, rank: int, world: int, dist_sync_on_step: bool, forward: bool
              ) -> dict[str, Any]:
    """Feed this rank's batches to a fresh metric; return its batch values and the final
    (synced) value, and any violated invariant as a message."""
    metric = case.make(dist_sync_on_step=dist_sync_on_step, **case.kwargs)
    steps, problems = [], []
    for i in range(rank, NUM_BATCHES, world):
        if forward:
            steps.append(float(metric(*case.batches[i])))
        else:
            metric.update(*case.batches[i])
        if case.max_held is not None and _held(metric) > case.max_held:
            problems.append(f"{_held(metric)} rows held after batch {i}, at most {case.max_held}")
    final = float(metric.compute())
    if float(metric.compute()) != final:
        problems.append("a second compute() differs")
    if float(pickle.loads(pickle.dumps(metric)).compute()) != final:
        problems.append("the unpickled metric computes another value")
    return {"steps": steps, "final": final, "problems": problems}


MODES = [(sync, forward) for sync in (False, True) for forward in (True, False)
         if forward or not sync]  # dist_sync_on_step only changes forward's batch values


def run_all(cases: Sequence[Case], rank: int, world: int) -> dict[tuple[str, bool, bool], Any]:
    return {(c.name, sync, fwd): run_class(c, rank, world, sync, fwd)
            for c in cases for sync, fwd in MODES}


def check(case: Case, results: dict[tuple[str, bool, bool], Any], rank: int, world: int
          ) -> None:
    """Assert one rank's results against the references."""
    everything = reference_on(case, range(NUM_BATCHES))
    for sync, fwd in MODES:
        got = results[(case.name, sync, fwd)]
        where = f"{case.name}, rank {rank} of {world}, dist_sync_on_step={sync}, forward={fwd}"
        assert got["problems"] == [], where
        assert got["final"] == pytest.approx(everything, abs=case.atol), where
        for step, value in enumerate(got["steps"]):
            mine = rank + step * world
            batches = range(step * world, (step + 1) * world) if sync else [mine]
            assert value == pytest.approx(reference_on(case, batches), abs=case.atol), (
                f"{where}, step {step}"
            )


def check_functional(case: Case) -> None:
    for i, batch in enumerate(case.batches):
        assert case.functional(*batch) == pytest.approx(
            reference_on(case, [i]), abs=case.atol
        ), f"{case.name}, batch {i}"


def _worker(rank: int, world: int, port: int, make_cases: Callable[[], list[Case]], out: Any
            ) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        out[rank] = run_all(make_cases(), rank, world)
    finally:
        dist.destroy_process_group()


def run_ddp(make_cases: Callable[[], list[Case]], world: int = 2
            ) -> dict[int, dict[tuple[str, bool, bool], Any]]:
    """Every case in ``world`` gloo processes; their results by rank. ``make_cases`` must
    be a module-level function (it is pickled into the spawned processes)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(world, port, make_cases, out), nprocs=world)
        return dict(out)


def normalised(*arrays: np.ndarray) -> list[np.ndarray]:
    """Float64 rows scaled to unit norm, for the references of normalising metrics."""
    return [F.normalize(torch.from_numpy(a), dim=1).numpy() for a in arrays]
