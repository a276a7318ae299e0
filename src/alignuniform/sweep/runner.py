"""Run a sweep: the output folder, resume, the local worker pool, and the tables.

Layout of ``DIR`` (the same for every backend)::

    DIR/sweep.json            the resolved sweep (every trial's config), its fingerprint,
                              the environment
    DIR/trials/<id>/          one training run per trial (config.yaml, checkpoint.pt,
                              log.jsonl, epochs.jsonl), trial.json (name, overrides),
                              eval.json, result.json (its row), error.txt if it failed
    DIR/results.jsonl|csv     one row per finished trial, in sweep order
    DIR/analysis.json, report.html, report.md, *.png   (``sweep analyze``)

``DIR`` is locked for the sweep's life (``alignuniform.io.RunLock``). A rerun of the same
command skips finished trials (ok or failed; ``retry_failed`` reruns failed ones) and
resumes interrupted ones from their last epoch checkpoint.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import io
import multiprocessing
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alignuniform.io import (
    RunLock,
    atomic_write_text,
    read_json,
    remove_stale_temps,
    to_json,
    write_json,
)
from alignuniform.sweep.spec import SweepError, SweepSpec, Trial
from alignuniform.sweep.trial import finished_row, run_trial

BACKENDS = ("local", "ray")
TrialFn = Callable[..., dict]


@dataclass
class SweepOutcome:
    """What a sweep run did."""

    out_dir: Path
    total: int
    ran: int
    skipped: int
    ok: int
    failed: int
    collapsed: int
    wall_s: float
    rows: list[dict]


def default_workers() -> int:
    """One worker per two cores (each gets two threads), at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def threads_per_worker(workers: int) -> int:
    """Torch threads of each worker: the cores shared out (at least one)."""
    return max(1, (os.cpu_count() or 1) // workers)


def environment() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.is_available(), "argv": sys.argv}


def trial_dir(out_dir: Path, trial: Trial) -> Path:
    return out_dir / "trials" / trial.id


def _check_out(spec: SweepSpec, out_dir: Path) -> None:
    """Refuse a folder that holds another sweep, or something that is not a sweep."""
    meta = out_dir / "sweep.json"
    if meta.is_file():
        old = read_json(meta)
        if old.get("fingerprint") != spec.fingerprint():
            raise SweepError(
                f"{out_dir} holds a different sweep ({old.get('path')}, seed "
                f"{old.get('seed')}, {len(old.get('trial_list', []))} trials): tables are "
                "never mixed. To resume it, rerun with its sweep file and seed (see its "
                "sweep.json); to start over, delete the folder or choose another --out")
    elif any(p.name not in (".lock",) for p in out_dir.iterdir()):
        raise SweepError(f"{out_dir} is not empty and holds no sweep.json; choose an empty or "
                         "new --out")


def write_tables(out_dir: Path, rows: list[dict]) -> None:
    """``results.jsonl`` and ``results.csv``: one row per finished trial, in sweep order."""
    rows = sorted(rows, key=lambda r: r["index"])
    atomic_write_text(out_dir / "results.jsonl",
                      "".join(to_json(r, indent=None) + "\n" for r in rows))
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(v) for k, v in r.items()})
    atomic_write_text(out_dir / "results.csv", buf.getvalue())


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return to_json(value, indent=None, sort_keys=True)
    return value


# ---------------------------------------------------------------------------------------------
# the local pool


def _init_worker(threads: int) -> None:
    """Worker start: torch threads = cores / workers; die with the sweep (Linux), so a
    ``kill -9`` of the sweep never leaves a trial writing on its own."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    import torch

    torch.set_num_threads(threads)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Spawned workers: children of the sweep itself, so the kernel kills them when the sweep
    dies (``PR_SET_PDEATHSIG``; a fork server's workers outlive a ``kill -9`` of the sweep,
    which ``test_kill_9_of_the_sweep_loses_only_unfinished_epochs`` caught), and clean
    processes (no threads or CUDA state inherited, as ``fork`` would). Each imports torch once
    per sweep, not per trial: the pool serves every trial."""
    return multiprocessing.get_context("spawn")


def _run_local(todo: list[Trial], spec: SweepSpec, out_dir: Path, workers: int,
               threads: int, trial_fn: TrialFn, on_row: Callable[[dict], None]) -> None:
    ev = dataclasses.asdict(spec.evaluate)
    pending = list(todo)
    while pending:
        ctx = _pool_context()
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx,
                                    initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {
                pool.submit(trial_fn, t.to_dict(), str(trial_dir(out_dir, t)), ev,
                            collapse_fraction=spec.analysis.collapse_fraction): t
                for t in pending
            }
            broken: list[Trial] = []
            for fut in cf.as_completed(futures):
                trial = futures[fut]
                try:
                    row = fut.result()
                except cf.process.BrokenProcessPool:
                    broken.append(trial)
                    continue
                except Exception as err:  # noqa: BLE001 (a trial_fn that raised)
                    row = _failed_row(trial, f"{type(err).__name__}: {err}")
                    write_json(trial_dir(out_dir, trial) / "result.json", row)
                on_row(row)
        pending = []
        if broken:
            # a worker died (out of memory, a signal): the trials it held are recorded as
            # failed; the others never started and go to a fresh pool
            started = [t for t in broken if (trial_dir(out_dir, t) / "config.yaml").exists()]
            for trial in started:
                row = _failed_row(trial, "the worker process died (killed, or out of memory)")
                write_json(trial_dir(out_dir, trial) / "result.json", row)
                on_row(row)
            pending = [t for t in broken if t not in started]


def _failed_row(trial: Trial, error: str) -> dict:
    return {"index": trial.index, "id": trial.id, "name": trial.name, "status": "failed",
            "error": error, "collapsed": None, **trial.overrides}


# ---------------------------------------------------------------------------------------------
# the sweep


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    trial_fn: TrialFn = run_trial,
) -> SweepOutcome:
    """Run every unfinished trial of ``spec`` into ``out_dir`` and write the tables.

    Args:
        spec: From :func:`alignuniform.sweep.load_sweep`.
        out_dir: The sweep's folder (created; locked while the sweep runs).
        workers: Trials at a time (local: worker processes, each with cores / workers
            torch threads; Ray: at most this many concurrent trials, ``None``: as many as
            the resources allow). Default (local): :func:`default_workers`.
        backend: "local" or "ray" (needs ``pip install 'alignuniform[ray]'``).
        address: Ray cluster address ("auto" to join a running one); ``None`` starts a
            local Ray instance unless one is already initialised.
        threads: Torch threads per local worker (default: cores / workers; on a machine
            busy with other work, 1 is much faster than oversubscribing the cores).
        retry_failed: Rerun trials that failed before (they are skipped by default).
        progress: Show a progress bar over trials.
        trial_fn: What runs one trial (:func:`alignuniform.sweep.trial.run_trial`);
            benchmarks and tests substitute a cheap one. Must be picklable.

    Raises:
        SweepError: ``out_dir`` holds another sweep, or a bad backend/workers value.
        alignuniform.io.RunLockedError: Another process is running a sweep in ``out_dir``.
    """
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise SweepError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepError(f"workers must be an int >= 1, got {workers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise SweepError(f"threads must be an int >= 1, got {threads!r}")
    if backend == "ray":
        from alignuniform.sweep.ray_backend import require_ray

        require_ray()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    lock = RunLock(out_dir)  # checks that the folder is writable, before any work
    try:
        _check_out(spec, out_dir)
        remove_stale_temps(out_dir)
        meta = spec.to_dict()
        meta["environment"] = environment()
        n_workers = workers or default_workers()
        meta["run"] = {"backend": backend, "workers": n_workers if backend == "local" else None,
                       "threads": (threads or threads_per_worker(n_workers)
                                   if backend == "local" else max(1, int(spec.resources.cpu)))}
        write_json(out_dir / "sweep.json", meta)
        todo: list[Trial] = []
        done: dict[str, dict] = {}
        for trial in spec.trial_list:
            folder = trial_dir(out_dir, trial)
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(folder)
            info = folder / "trial.json"
            if not info.is_file():
                write_json(info, trial.to_dict())
            row = finished_row(folder)
            if row is not None and not (retry_failed and row.get("status") != "ok"):
                done[trial.id] = row
            else:
                todo.append(trial)
        skipped = len(done)
        bar = tqdm(total=len(spec.trial_list), initial=skipped, desc="trials", unit="trial",
                   disable=not progress)

        def on_row(row: dict) -> None:
            done[row["id"]] = row
            write_tables(out_dir, list(done.values()))
            bar.update(1)
            if row.get("status") != "ok":
                bar.write(f"trial {row['id']} ({row['name']}) failed: {row.get('error')}")

        write_tables(out_dir, list(done.values()))
        if todo:
            if backend == "local":
                _run_local(todo, spec, out_dir, n_workers, meta["run"]["threads"], trial_fn,
                           on_row)
            else:
                from alignuniform.sweep.ray_backend import run_ray

                run_ray(todo, spec, out_dir, workers=workers, address=address,
                        trial_fn=trial_fn, on_row=on_row)
        bar.close()
        rows = sorted(done.values(), key=lambda r: r["index"])
        write_tables(out_dir, rows)
    finally:
        lock.release()
    ok = [r for r in rows if r.get("status") == "ok"]
    return SweepOutcome(
        out_dir=out_dir, total=len(spec.trial_list), ran=len(todo), skipped=skipped,
        ok=len(ok), failed=sum(r.get("status") != "ok" for r in rows),
        collapsed=sum(bool(r.get("collapsed")) for r in ok),
        wall_s=time.perf_counter() - start, rows=rows)
