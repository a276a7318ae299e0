"""The torchmetrics classes' ``update`` against calling the functional metric per batch.

Per batch of B pairs (d = 128): ``Alignment.update`` against ``metrics.alignment`` (which
validates on the host and returns a float, so it synchronises on a GPU) and against the bare
float64 sum; ``Uniformity.update`` in both modes. Also counted: host reads (``item``,
``bool``, ``float``...) per ``update``, the thing that stalls a GPU pipeline; on a CUDA
device, ``torch.cuda.set_sync_debug_mode("error")`` around the updates proves it there.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from alignuniform import metrics
from benchmarks._timing import best_of

BATCHES, B, D, REPEAT = 50, 256, 128, 3
_READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist")


def _batches(device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(BATCHES):
        x = F.normalize(torch.randn(B, D, generator=g), dim=1)
        y = F.normalize(x + 0.3 * torch.randn(B, D, generator=g), dim=1)
        out.append((x.to(device), y.to(device)))
    return out


@contextlib.contextmanager
def _count_host_reads(counter: list[int]):
    originals = {name: getattr(torch.Tensor, name) for name in _READS}

    def counting(original):
        def read(self, *args, **kwargs):
            counter[0] += 1
            return original(self, *args, **kwargs)

        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counting(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _candidates(batches):
    def loop(make, step):
        def run():
            state = make()
            for x, y in batches:
                step(state, x, y)
            return state
        return run

    return {
        "Alignment.update": loop(metrics.Alignment, lambda m, x, y: m.update(x, y)),
        "metrics.alignment per batch": loop(
            list, lambda acc, x, y: acc.append(metrics.alignment(x, y))
        ),
        "bare float64 sum (floor)": loop(
            list, lambda acc, x, y: acc.append((x.double() - y.double()).pow(2).sum())
        ),
        "Uniformity.update exact": loop(metrics.Uniformity, lambda m, x, y: m.update(x)),
        "Uniformity.update max_rows=4096": loop(
            lambda: metrics.Uniformity(max_rows=4096), lambda m, x, y: m.update(x)
        ),
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run() -> list[dict]:
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        batches = _batches(device)
        for name, fn in _candidates(batches).items():
            fn()  # warm-up
            _sync(device)

            def timed(fn=fn, device=device):
                fn()
                _sync(device)

            seconds, _ = best_of(timed, REPEAT)
            reads = [0]
            with _count_host_reads(reads):
                fn()
            row = {
                "device": device, "candidate": name, "batches": BATCHES, "batch": B, "d": D,
                "us_per_update": round(seconds / BATCHES * 1e6, 1),
                "host_reads_per_update": reads[0] / BATCHES,
            }
            if device.startswith("cuda") and name.endswith(("update", "exact", "4096")):
                torch.cuda.set_sync_debug_mode("error")  # raises on any synchronising call
                try:
                    fn()
                    row["cuda_sync_free"] = True
                except RuntimeError:
                    row["cuda_sync_free"] = False
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            rows.append(row)
        # the values agree, so the timings compare like with like
        m = _candidates(batches)["Alignment.update"]()
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        rows.append({"device": device, "check": "Alignment == metrics.alignment",
                     "abs_diff": abs(m.compute().item() - metrics.alignment(x, y))})
    return rows
