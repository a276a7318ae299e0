"""Two-view augmentation: per-sample transforms in DataLoader workers vs one batched pipeline.

Both executors run the same ``RecipeSpec`` (the CIFAR-10 recipe at 32x32 and the paper's
STL-10 recipe, 96x96 -> 64x64) on the same uint8 images and deliver the same thing, a batch
of two normalised views per image. Throughput is pairs per second over ``BATCHES`` batches
of ``BATCH`` images after one warm-up batch, measured alternately in one process.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from alignuniform.data import TwoViews, build_batch_recipe, build_dataset, build_recipe

BATCH = 256
BATCHES = 4
WORKERS = (0, 2)


def _per_sample(dataset, recipe: str, workers: int) -> float:
    loader = DataLoader(TwoViews(dataset, build_recipe(recipe)), batch_size=BATCH,
                        num_workers=workers, shuffle=False, drop_last=True)
    it = iter(loader)
    next(it)  # warm-up (and worker start-up)
    start = time.perf_counter()
    for _ in range(BATCHES):
        v1, v2, _ = next(it)
    return time.perf_counter() - start


def _batched(dataset, recipe: str, device: torch.device) -> float:
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=0, shuffle=False, drop_last=True)
    augment = build_batch_recipe(recipe)
    it = iter(loader)

    def one() -> None:
        images = next(it)[0].to(device)
        augment(images), augment(images)
        if device.type == "cuda":
            torch.cuda.synchronize()

    one()  # warm-up
    start = time.perf_counter()
    for _ in range(BATCHES):
        one()
    return time.perf_counter() - start


def run() -> list[dict]:
    torch.manual_seed(0)
    pairs = BATCH * BATCHES
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for recipe, size in (("cifar10", 32), ("stl10", 96)):
        dataset = build_dataset("synthetic", None, "train", n=BATCH * (BATCHES + 1),
                                image_size=size)
        timings = {f"per-sample, DataLoader workers={w}": _per_sample(dataset, recipe, w)
                   for w in WORKERS}
        timings.update({f"batched on {d.type}": _batched(dataset, recipe, d) for d in devices})
        baseline = timings[f"per-sample, DataLoader workers={WORKERS[0]}"]
        for pipeline, seconds in timings.items():
            rows.append({
                "recipe": recipe, "image": f"{size}x{size}", "pipeline": pipeline,
                "batch": BATCH, "pairs": pairs, "seconds": round(seconds, 3),
                "pairs_per_s": round(pairs / seconds, 1),
                "speedup_vs_per_sample_w0": round(baseline / seconds, 2),
            })
    return rows
