"""Dense training runs through the engine: the logged terms against a brute-force
recomputation of the step the engine took, the dense config section's errors, resume (also
after kill -9) and DenseCL's queue. One step of the dense stack without the engine is in
test_train_dense_step.py."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import yaml

from alignuniform.checkpoint import load_checkpoint, save_checkpoint
from alignuniform.models import build_model
from alignuniform.train import config_from_dict, load_config, train
from alignuniform.train import dense_step as dense_step_module
from tests.helpers import DENSE_MODEL, dense_config

# ---------------------------------------------------------------------- brute force


def _centres(box: list[float], flip: bool, h: int, w: int) -> list[tuple[float, float, float]]:
    """(x, y, diagonal) of each bin, row-major, as README's "Crop geometry" defines them."""
    x0, y0, x1, y1 = box
    out = []
    for r in range(h):
        for c in range(w):
            u = (c + 0.5) / w
            u = 1 - u if flip else u
            v = (r + 0.5) / h
            out.append((x0 + u * (x1 - x0), y0 + v * (y1 - y0),
                        math.hypot((x1 - x0) / w, (y1 - y0) / h)))
    return out


def _geometric(batch: dict, h: int, w: int, threshold: float = 0.7) -> list[tuple[int, int, int]]:
    pairs = []
    for b in range(len(batch["box1"])):
        c1 = _centres(batch["box1"][b].tolist(), bool(batch["flip1"][b]), h, w)
        c2 = _centres(batch["box2"][b].tolist(), bool(batch["flip2"][b]), h, w)
        for i, (xa, ya, da) in enumerate(c1):
            for j, (xb, yb, db) in enumerate(c2):
                if math.hypot(xa - xb, ya - yb) / max(da, db) < threshold:
                    pairs.append((b, i, j))
    return pairs


def _argmax(g1: torch.Tensor, g2: torch.Tensor) -> list[tuple[int, int, int]]:
    pairs = []
    for b in range(g1.shape[0]):
        a = torch.nn.functional.normalize(g1[b].flatten(1).T.double(), dim=1)
        k = torch.nn.functional.normalize(g2[b].flatten(1).T.double(), dim=1)
        for i in range(a.shape[0]):
            pairs.append((b, i, int((k @ a[i]).argmax())))
    return pairs


def _log_mean_exp_pdist(x: torch.Tensor, t: float) -> float:
    x = x.double()
    return float(torch.pdist(x).pow(2).mul(-t).exp().mean().log())


def _recompute(cfg: dict, state: dict, batch: dict, scheme: str) -> dict:
    """The step's loss terms from the weights it started from, in float64 where it counts."""
    model = build_model("dense", feat_dim=8, **DENSE_MODEL["kwargs"])
    model.load_state_dict(state)
    model.train()  # batch statistics of both views together, as training runs it
    with torch.no_grad():
        out = model.forward_dense(torch.cat([batch["view1"], batch["view2"]]))
    f1, f2 = (m.double() for m in out["dense"].chunk(2))
    x, y = (z.double() for z in out["global"].chunk(2))
    bsz, _, h, w = f1.shape
    pairs = (_geometric(batch, h, w) if scheme == "geometric"
             else _argmax(*out["backbone"].chunk(2)))
    loc = lambda f, b, i: f[b, :, i // w, i % w]  # noqa: E731
    d, g = cfg["dense"], cfg["loss"]
    align = sum(float((loc(f1, b, i) - loc(f2, b, j)).pow(2).sum()) for b, i, j in pairs)
    flat = lambda f: f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])  # noqa: E731
    uniform = (_log_mean_exp_pdist(flat(f1), d["t"]) + _log_mean_exp_pdist(flat(f2), d["t"])) / 2
    nll = 0.0
    for b, i, j in pairs:
        q = loc(f1, b, i)
        logits = [float(q @ loc(f2, b, j)) / d["tau"]]
        logits += [float(q @ loc(f2, o, m)) / d["tau"]
                   for o in range(bsz) if o != b for m in range(h * w)]
        nll += float(torch.tensor(logits).logsumexp(0)) - logits[0]
    terms = {"dense_align": align / len(pairs), "dense_uniform": uniform,
             "dense_contrastive": nll / len(pairs), "dense_pairs": len(pairs),
             "global_align": float((x - y).pow(2).sum(1).mean()),
             "global_uniform": (_log_mean_exp_pdist(x, g["t"])
                                + _log_mean_exp_pdist(y, g["t"])) / 2}
    dense = (d["w_align"] * terms["dense_align"] + d["w_uniform"] * terms["dense_uniform"]
             + d["w_contrastive"] * terms["dense_contrastive"])
    glob = g["w_align"] * terms["global_align"] + g["w_uniform"] * terms["global_uniform"]
    terms["loss"] = (1 - d["lam"]) * glob + d["lam"] * dense
    return terms


def _spied_run(cfg: dict, tmp_path, monkeypatch) -> tuple[list, list[dict]]:
    """Train ``cfg``, keeping each step's model state (before the step) and batch; returns
    them with the logged rows."""
    seen = []
    inner = dense_step_module.DenseStep.loss

    def spy(self, batch, step):
        seen.append((copy.deepcopy(self.context.model.state_dict()), batch))
        return inner(self, batch, step)

    monkeypatch.setattr(dense_step_module.DenseStep, "loss", spy)
    out = train(config_from_dict(cfg), tmp_path / "run", progress=False)
    return seen, [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("scheme", ["geometric", "feature_argmax"])
def test_logged_dense_terms_equal_a_brute_force_recomputation(tmp_path, monkeypatch, scheme):
    cfg = dense_config(scheme=scheme)
    seen, logged = _spied_run(cfg, tmp_path, monkeypatch)
    assert len(logged) == len(seen) == 4  # 16 images / 4
    for step in (0, 3):  # the first step, and one after three updates
        expected = _recompute(cfg, *seen[step], scheme)
        row = logged[step]
        assert row["dense_pairs"] == expected["dense_pairs"] > 0
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def test_a_config_without_dense_terms_trains_as_before():
    config = config_from_dict({**dense_config(), "dense": {}})
    assert not config.dense.active
    assert config.dense.scheme == "geometric" and config.dense.lam == 0.5


@pytest.mark.parametrize("change, message", [
    ({"dense": {"w_align": -1.0}}, "dense.w_align must be >= 0"),
    ({"dense": {"w_align": 1.0, "t": 0.0}}, "dense.t must be a positive finite number"),
    ({"dense": {"w_align": 1.0, "lam": 1.5}}, r"dense.lam must be in \[0, 1\]"),
    ({"dense": {"w_align": 1.0, "scheme": "flow"}}, "dense.scheme must be one of geometric"),
    ({"dense": {"w_align": 1.0, "scheme": "feature_argmax", "threshold": 0.5}},
     "takes no threshold"),
    ({"dense": {"w_align": 1.0, "threshold": 0.0}}, "dense.threshold must be > 0"),
    ({"dense": {"w_align": 1.0, "scheme": "mutual_nn", "threshold": 2.0}},
     r"cosine similarity in \[-1, 1\]"),
    ({"dense": {"w_align": 1.0, "scheme": 3}}, "dense.scheme must be str"),
    ({"dense": {"w_align": 1.0, "radius": 3}}, "unknown config key.*dense.radius"),
    ({"dense": {"w_align": 1.0}, "model": {"name": "small_cnn"}}, "model.name: dense"),
    ({"dense": {"w_align": 1.0}, "data": {"batched_augment": True}},
     "data.batched_augment: false"),
    ({"dense": {"w_align": 1.0}, "data": {"augment": {"rotation": {"angles": [90]}}}},
     "crop, resize, horizontal flip"),
    ({"dense": {"w_align": 1.0}, "data": {"recipe": "cifar10_eval"}},
     "need an image training recipe"),
    ({"dense": {"w_align": 1.0, "exclude_same_image": True}, "queue": {"size": 16}},
     "dense.exclude_same_image does not apply with a MoCo queue"),
    ({"dense": {"w_align": 1.0}, "queue": {"size": 16}, "loss": {"w_uniform": 0.0}},
     "no loss term uses negatives"),
])
def test_bad_dense_configs_are_refused_naming_the_key(tmp_path, change, message):
    raw = dense_config()
    for section, values in change.items():
        raw[section] = ({**raw.get(section, {}), **values} if section != "dense" else values)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_dense_resume_gives_the_uninterrupted_weights(tmp_path):
    straight = train(config_from_dict({**dense_config(), "epochs": 2}), tmp_path / "a",
                     progress=False)
    first = train(config_from_dict(dense_config()), tmp_path / "b", progress=False)
    resumed = train(config_from_dict({**dense_config(), "epochs": 2}), first, resume=True,
                    progress=False)
    a, b = (load_checkpoint(p / "checkpoint.pt")["model"]
            for p in (straight, resumed))
    for name, value in a.items():
        assert torch.equal(b[name], value), name
    assert (resumed / "log.jsonl").read_text() == (straight / "log.jsonl").read_text()


def test_a_checkpoint_from_before_the_dense_section_resumes(tmp_path):
    raw = {**dense_config(), "dense": {}}  # no dense terms: a run as before this section existed
    run = train(config_from_dict(raw), tmp_path / "old", progress=False)
    state = load_checkpoint(run / "checkpoint.pt")
    del state["config"]["dense"]
    save_checkpoint(run / "checkpoint.pt", state)
    train(config_from_dict({**raw, "epochs": 2}), run, resume=True, progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    with pytest.raises(ValueError, match="differs from the run's in dense.lam, dense.t"):
        train(config_from_dict({**dense_config(), "epochs": 3}), run, resume=True, progress=False)


# ------------------------------------------------------------------- DenseCL's dense queue


def _queue_config(scheme: str = "feature_argmax", epochs: int = 1) -> dict:
    """DenseCL's step: MoCo's global InfoNCE and the dense terms against a queue of 8 keys
    (two batches: it wraps every 2 steps)."""
    raw = dense_config(scheme=scheme)
    raw["loss"] = {"w_contrastive": 1.0, "tau": 0.2, "w_align": 0.5, "w_uniform": 0.5}
    raw["queue"] = {"size": 8, "momentum": 0.9}
    return {**raw, "epochs": epochs}


def test_a_dense_queue_step_enqueues_each_images_mean_key_map(tmp_path):
    from alignuniform.train import engine

    run = engine._Run(config_from_dict(_queue_config()), tmp_path / "run",
                      engine.init_from_env("cpu"), progress=False)
    batch = next(iter(run.loader))
    before = run.mq.dense_queue.clone()
    terms = run.train_step(batch)
    assert math.isfinite(terms["loss"]) and terms["dense_pairs"] == 4 * 16  # one per location
    assert {"global_contrastive", "dense_contrastive", "dense_align",
            "dense_uniform"} <= set(terms)
    assert int(run.mq.ptr) == 4
    with torch.no_grad():  # the key encoder the step used (its EMA step came first)
        maps = run.mq.key_encoder.forward_dense(batch["view2"])["dense"].double()
    mean = maps.sum(dim=(2, 3)) / (maps.shape[2] * maps.shape[3])
    expected = mean / mean.norm(dim=1, keepdim=True)
    torch.testing.assert_close(run.mq.dense_queue[:4].double(), expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(run.mq.dense_queue[4:], before[4:])  # not yet reached


def test_dense_queue_training_runs_and_resumes_bit_identically(tmp_path):
    straight = train(config_from_dict(_queue_config(epochs=2)), tmp_path / "a", progress=False)
    first = train(config_from_dict(_queue_config()), tmp_path / "b", progress=False)
    resumed = train(config_from_dict(_queue_config(epochs=2)), first, resume=True,
                    progress=False)
    logged = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 8 and all(math.isfinite(row["loss"]) for row in logged)
    a, b = (load_checkpoint(p / "checkpoint.pt") for p in (straight, resumed))
    g = torch.Generator().manual_seed(0)  # the initial queues, as MomentumQueue draws them
    mq = a["momentum_queue"]
    for name in ("queue", "dense_queue"):  # both filled with keys: none of the initial rows
        initial = torch.nn.functional.normalize(torch.randn(8, 8, generator=g), dim=1)
        assert not (mq[name] == initial).all(1).any(), name
    assert int(mq["ptr"]) == 0 and mq["dense_queue"].shape == (8, 8)
    torch.testing.assert_close(mq["dense_queue"].norm(dim=1), torch.ones(8))
    for part in ("model", "momentum_queue"):  # weights; key encoder and both queues
        assert set(a[part]) == set(b[part])
        for name, value in a[part].items():
            assert torch.equal(b[part][name], value), (part, name)
    assert (resumed / "log.jsonl").read_text() == (straight / "log.jsonl").read_text()


@pytest.mark.slow
def test_dense_queue_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_run(tmp_path):
    from tests.helpers import kill_mid_epoch, logged_steps

    raw = _queue_config(epochs=3)
    reference = train(config_from_dict(raw), tmp_path / "reference", progress=False)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    run = tmp_path / "killed"
    steps = kill_mid_epoch(config_path, run)
    saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["epoch"] == 1 and steps[-1]["step"] > saved["step"]  # killed mid-epoch 2

    train(config_from_dict(raw), run, resume=True, progress=False)
    final, expected = (load_checkpoint(p / "checkpoint.pt") for p in (run, reference))
    assert final["step"] == expected["step"] == 12
    for part in ("model", "momentum_queue"):  # weights; key encoder and both queues
        assert set(final[part]) == set(expected[part])
        for name, value in expected[part].items():
            assert torch.equal(final[part][name], value), (part, name)
    assert logged_steps(run / "log.jsonl") == logged_steps(reference / "log.jsonl")


# ------------------------------------------------------------ pair quality during training


def _mutual(g1: torch.Tensor, g2: torch.Tensor, threshold: float = 0.5) -> list[tuple]:
    pairs = []
    for b in range(g1.shape[0]):
        a = torch.nn.functional.normalize(g1[b].flatten(1).T.double(), dim=1)
        k = torch.nn.functional.normalize(g2[b].flatten(1).T.double(), dim=1)
        sim = a @ k.T
        for i in range(sim.shape[0]):
            j = int(sim[i].argmax())
            if int(sim[:, j].argmax()) == i and sim[i, j] >= threshold:
                pairs.append((b, i, j))
    return pairs


@pytest.mark.parametrize("queue", [False, True])
def test_pair_quality_logging_changes_no_loss_and_no_weight(tmp_path, queue):
    raw = _queue_config() if queue else dense_config(scheme="feature_argmax")
    runs = {}
    for every in (0, 2):
        cfg = copy.deepcopy(raw)
        cfg["dense"]["pair_quality_every"] = every
        runs[every] = train(config_from_dict(cfg), tmp_path / str(every), progress=False)
    off, on = ([json.loads(line) for line in (runs[k] / "log.jsonl").read_text().splitlines()]
               for k in (0, 2))
    assert len(on) == len(off) == 4
    for a, b in zip(off, on, strict=True):
        extra = set(b) - set(a)
        assert {k: b[k] for k in a} == a  # every term, the loss included, to the bit
        assert extra == (set() if b["step"] % 2 else {
            f"pairs_{s}_{n}" for s in ("geometric", "feature_argmax", "mutual_nn")
            for n in ("precision", "recall")})
    a, b = (load_checkpoint(runs[k] / "checkpoint.pt") for k in (0, 2))
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
    epoch = json.loads((runs[2] / "epochs.jsonl").read_text())
    # an epoch's mean of a term logged every 2nd step is over those steps
    assert epoch["pairs_mutual_nn_recall"] == pytest.approx(
        (on[1]["pairs_mutual_nn_recall"] + on[3]["pairs_mutual_nn_recall"]) / 2)
    assert epoch["loss"] == pytest.approx(sum(r["loss"] for r in on) / 4)


def test_logged_pair_quality_equals_a_brute_force_recomputation(tmp_path, monkeypatch):
    from alignuniform import dense

    cfg = dense_config(scheme="mutual_nn", threshold=0.9, pair_quality_every=1)
    seen, logged = _spied_run(cfg, tmp_path, monkeypatch)
    for (state, batch), row in zip(seen, logged, strict=True):
        model = build_model("dense", feat_dim=8, **DENSE_MODEL["kwargs"])
        model.load_state_dict(state)
        model.train()  # both views in one batch, as the step runs them
        with torch.no_grad():
            g1, g2 = model.forward_dense(torch.cat([batch["view1"], batch["view2"]])
                                         )["backbone"].chunk(2)
        h, w = g1.shape[-2:]
        truth = dense.location_pairs(
            "geometric_nearest", boxes1=batch["box1"], boxes2=batch["box2"],
            flips1=batch["flip1"], flips2=batch["flip2"], shape1=(h, w), shape2=(h, w),
            image_size=batch["size"]).as_set()
        assert truth
        # the scheme trained with uses the config's threshold (0.9: stricter than the
        # default 0.5, which these untrained maps pass everywhere), the others their defaults
        for scheme, pred in (("geometric", _geometric(batch, h, w)),
                             ("feature_argmax", _argmax(g1, g2)),
                             ("mutual_nn", _mutual(g1, g2, 0.9))):
            hit = len(set(pred) & truth)
            precision = hit / len(set(pred)) if pred else 1.0
            assert row[f"pairs_{scheme}_precision"] == pytest.approx(precision), scheme
            assert row[f"pairs_{scheme}_recall"] == pytest.approx(hit / len(truth)), scheme


@pytest.mark.parametrize("dense, message", [
    ({"w_align": 1.0, "pair_quality_every": -1}, "dense.pair_quality_every must be >= 0"),
    ({"pair_quality_every": 5}, "dense.pair_quality_every needs dense terms"),
])
def test_bad_pair_quality_settings_are_refused(dense, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict({**dense_config(), "dense": dense})
