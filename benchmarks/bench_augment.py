"""Cost of each augmentation component alone, per-sample and batched, at CIFAR-10 size.

What a study over components (``sweeps/augment_study.yaml``) pays per view: each component
alone (``{base: none, <name>: {}}``) on 32x32 uint8 images, the per-sample pipeline in the
main process (one image per call) and the batched executor on the CPU, best of three over
one batch of ``BATCH`` images; the full CIFAR-10 preset for reference.
"""

from __future__ import annotations

import torch

from alignuniform.data import COMPONENTS, build_augment_recipe
from benchmarks._timing import best_of

BATCH = 256


def run() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=g)
    cases = {"none": {"base": "none"}, "cifar10 preset": {}}
    cases.update({name: {"base": "none", name: {}} for name in COMPONENTS})
    build_augment_recipe("cifar10").batched()(images)  # warm-up (lazy kernels, allocator)
    rows = []
    for label, augment in cases.items():
        recipe = build_augment_recipe("cifar10", augment)
        per_sample, batched = recipe.per_sample(), recipe.batched()
        s_per, _ = best_of(lambda ps=per_sample: [ps(img) for img in images])
        s_bat, _ = best_of(lambda b=batched: b(images))
        rows.append({
            "components": label, "batch": BATCH,
            "per_sample_ms": round(1e3 * s_per, 1), "batched_ms": round(1e3 * s_bat, 1),
            "per_sample_views_per_s": round(BATCH / s_per), "batched_views_per_s":
                round(BATCH / s_bat),
        })
    return rows
