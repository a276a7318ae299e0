"""What several test files share: independent references, tiny configs and models, stand-in
trials, and a way to kill a run mid-epoch. Test files import from here (``from tests.helpers
import ...``), never from one another; fixtures live in ``tests/conftest.py``."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from alignuniform.io import write_json

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# brute-force float64 references (loops over pairs, numpy only)


def sphere(n: int, d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """``n`` seeded points drawn uniformly on the unit sphere in ``d`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def ref_align(x, y, alpha):
    return np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(x, y, strict=True)])


def ref_uniform(x, t):
    vals = [
        math.exp(-t * np.sum((x[i] - x[j]) ** 2))
        for i in range(len(x))
        for j in range(i + 1, len(x))
    ]
    return math.log(np.mean(vals))


# ---------------------------------------------------------------------------------------------
# tiny encoders and data


class MeanColour(torch.nn.Module):
    """Mean colour (penultimate, 3-d) through a fixed random map to a normalised 4-d output."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, 4)

    def features(self, x):
        return x.float().mean(dim=(2, 3))

    def forward(self, x):
        return torch.nn.functional.normalize(self.head(self.features(x)), dim=1)


def synthetic_images(split: str, n: int):
    """``n`` synthetic 32x32 images of four classes that differ by mean colour."""
    from alignuniform.data import build_dataset

    return build_dataset("synthetic", None, split, n=n, image_size=32, num_classes=4)


def lightning_module(pl):
    """A linear 8 -> 4 Lightning module trained on alignment + uniformity of jittered rows."""

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 4)

        def forward(self, x):
            return F.normalize(self.net(x), dim=1)

        def training_step(self, batch, batch_idx):
            (x,) = batch
            g = torch.Generator().manual_seed(batch_idx)
            y = x + 0.1 * torch.randn(x.shape, generator=g)
            zx, zy = self(x), self(y)
            uniform = torch.pdist(zx).pow(2).mul(-2).exp().mean().log()
            loss = (zx - zy).pow(2).sum(1).mean() + uniform
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny()


def held_out_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded 8-d rows and a jittered copy of each."""
    g = torch.Generator().manual_seed(1)
    hx = torch.randn(n, 8, generator=g)
    return hx, hx + 0.2 * torch.randn(n, 8, generator=g)


# ---------------------------------------------------------------------------------------------
# dense training


DENSE_MODEL = {"name": "dense", "feat_dim": 8,
               "kwargs": {"backbone": "small_cnn", "width": 4, "hidden_dim": 16, "dense_dim": 8,
                          "probe_size": 32}}


def dense_config(**dense) -> dict:
    """16 synthetic 32x32 images, batches of 4 (4x4 dense maps), one epoch."""
    return {
        "data": {"name": "synthetic", "recipe": "cifar10", "batch_size": 4, "num_workers": 0,
                 "kwargs": {"n": 16}},
        "model": copy.deepcopy(DENSE_MODEL),
        "loss": {"w_align": 1.0, "alpha": 2.0, "w_uniform": 1.0, "t": 2.0},
        "dense": {"w_align": 1.0, "w_uniform": 0.5, "w_contrastive": 2.0, "t": 3.0,
                  "tau": 0.3, "lam": 0.25, **dense},
        "optim": {"milestones": [2]},
        "epochs": 1,
        "device": "cpu",
    }


def dense_study_rows(n: int = 12) -> list[dict]:
    """Rows of a made-up study: linear accuracy exactly linear in the global alignment,
    multi-object mIoU exactly linear in the multi-object backbone metrics, the rest noise."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        row = {"status": "ok", "embedding.alignment": rng.uniform(0, 1),
               "embedding.uniformity": rng.uniform(-4, -1), "embedding.uniformity_bound": -4.0}
        row["penultimate.linear_acc"] = 0.5 - 0.2 * row["embedding.alignment"]
        for variant in ("single", "multi"):
            for name in ("backbone", "dense"):
                for key in ("dense_alignment", "dense_uniformity", "miou"):
                    row[f"dense.{variant}.{name}.{key}"] = rng.uniform(0, 1)
        row["dense.multi.backbone.miou"] = (0.3 * row["dense.multi.backbone.dense_alignment"]
                                           - 0.1 * row["dense.multi.backbone.dense_uniformity"])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# sweeps


SWEEP_BASE = ROOT / "sweeps" / "mnist1d_base.yaml"
# a trial of a few seconds: 200 MNIST-1D sequences, one epoch, a 4-channel 1-D CNN
TINY_SET = {"epochs": 1, "data.batch_size": 50, "device": "cpu",
            "data.kwargs": {"n_train": 200, "n_test": 100, "n_val": 10, "seed": 0},
            "model.kwargs": {"pool": "max", "width": 4, "hidden_dim": 16}}
# the row columns that are wall-clock times, so differ between two identical runs
TIMING = ("train_s", "eval_s", "wall_s")


def write_sweep(tmp_path: Path, name: str = "sweep.yaml", **fields) -> Path:
    """A sweep file of tiny MNIST-1D trials (``TINY_SET``) with ``fields`` added."""
    spec = {"base": str(SWEEP_BASE), "set": dict(TINY_SET), **fields}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def instant_trial(trial: dict, trial_dir: str, evaluate: dict, *,
                  collapse_fraction: float = 0.2, threads: int | None = None) -> dict:
    """A trial that trains nothing: the row is a function of the overrides, and a trial
    whose ``loss.w_align`` is 13 fails. Module-level, so picklable: it runs in the local
    pool's worker processes."""
    w = float(trial["overrides"].get("loss.w_align", 1.0))
    row = {"index": trial["index"], "id": trial["id"], "name": trial["name"],
           "status": "ok", "error": None, "collapsed": w > 8, **trial["overrides"],
           "embedding.alignment": 0.1 * w, "embedding.uniformity": -1.0 / w,
           "embedding.uniformity_bound": -1.575, "embedding.linear_acc": 0.5 - 0.01 * w,
           "embedding.knn5_acc": 0.4, "embedding.dim": 2}
    if w == 13:
        row.update(status="failed", error="FloatingPointError: the loss is nan",
                   collapsed=None)
    Path(trial_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(trial_dir) / "result.json", row)
    return row


# ---------------------------------------------------------------------------------------------
# killing a run part-way through an epoch, for the exact-resume tests


def logged_steps(path: Path) -> list[dict]:
    """The complete lines of a ``log.jsonl`` that a live run may be appending to."""
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def kill_mid_epoch(config_path: Path, run: Path, epoch: int = 2) -> list[dict]:
    """Run ``alignuniform train`` on ``config_path`` into ``run`` in a child process, freeze
    it (SIGSTOP) once epoch ``epoch`` has begun, then ``kill -9`` it; return the steps it had
    logged by then."""
    cmd = [sys.executable, "-m", "alignuniform", "train", "--config", str(config_path),
           "--out", str(run), "--no-progress"]
    # same thread count as this process: float sums in the kernels depend on it
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads())))
    log = run / "log.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if any(s["epoch"] == epoch for s in logged_steps(log)):
                break  # the epoch before is checkpointed and this one has begun
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)  # freeze it, check where it is, then kill -9
        steps = logged_steps(log)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return steps


def spectral_reference(x: np.ndarray) -> dict:
    """Float64 numpy references of the spectral metrics of (N, d) rows: RankMe of the SVD,
    ranks and alpha-ReQ (ranks 2..K/2, at least 2..4) of the 1/N covariance's eigenvalues
    (alpha None when fewer than 3 in range are above 1e-10 x the largest), W2 of the
    normalised rows' Gaussian."""
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1].clip(0)[: len(x) - 1]
    q = lam / lam.sum()
    q = q[q > 0]
    k = len(lam)
    ranks = np.arange(2, min(k, max(4, k // 2)) + 1)
    ranks = ranks[lam[ranks - 1] > 1e-10 * lam[0]]
    alpha = None
    if len(ranks) >= 3:
        alpha = -np.polyfit(np.log(ranks), np.log(lam[ranks - 1]), 1)[0]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    mu, cov = u.mean(0), np.cov(u.T, bias=True)
    root = np.sqrt(np.linalg.eigvalsh(cov).clip(0)).sum()
    w2 = math.sqrt(max(mu @ mu + np.trace(cov) + 1 - 2 / math.sqrt(x.shape[1]) * root, 0))
    return {"rankme": math.exp(-(p * np.log(p)).sum()),
            "effective_rank": math.exp(-(q * np.log(q)).sum()),
            "stable_rank": lam.sum() / lam[0], "alpha_req": alpha, "gaussian_w2": w2}


def lidar_reference(v: np.ndarray, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """Float64 numpy LiDAR of (n, q, d) views: the unbiased between-class covariance of the
    sample means, the within-class scatter over n(q - 1) plus delta I."""
    v = np.asarray(v, dtype=np.float64)
    n, q, d = v.shape
    means = v.mean(1)
    between = np.cov(means.T).reshape(d, d)  # 1/(n-1)
    centred = (v - means[:, None]).reshape(-1, d)
    within = centred.T @ centred / (n * (q - 1)) + delta * np.eye(d)
    w, u = np.linalg.eigh(within)
    root_inv = u @ np.diag(w ** -0.5) @ u.T
    lam = np.linalg.eigvalsh(root_inv @ between @ root_inv).clip(0)
    p = lam / lam.sum() + eps
    return math.exp(-(p * np.log(p)).sum())


def free_port() -> int:
    """A TCP port free on this machine now: a rendezvous port for a multi-process test, so
    that two test runs at once (or anything on torchrun's default 29500) do not collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
