"""Tests for alignuniform.train: configs, the run directory, exact resume after kill -9, AMP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from alignuniform.checkpoint import load_checkpoint, load_encoder
from alignuniform.train import TrainConfig, load_config, train
from tests.helpers import kill_mid_epoch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _tiny(tmp_path: Path, **top) -> Path:
    """A run of a few seconds: 48 synthetic images, batches of 16, a 4-channel small CNN,
    batched augmentation (the per-sample path costs ~30 ms per image on a loaded 2-core box).
    """
    config = {
        "data": {"name": "synthetic", "recipe": "cifar10", "batch_size": 16, "num_workers": 0,
                 "batched_augment": True, "kwargs": {"n": 48}},
        "model": {"name": "small_cnn", "feat_dim": 8, "kwargs": {"width": 4, "hidden_dim": 16}},
        "loss": {"w_align": 1.0, "w_uniform": 1.0},
        "optim": {"milestones": [2]},
        "epochs": 3,
        "device": "cpu",
        **top,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_defaults_are_the_papers():
    config = load_config(None)
    assert isinstance(config, TrainConfig)
    assert config.data.batch_size == 768 and config.epochs == 200
    assert config.optim.momentum == 0.9 and config.optim.weight_decay == 1e-4
    assert config.optim.milestones == [155, 170, 185] and config.optim.gamma == 0.1
    assert config.learning_rate() == pytest.approx(0.12 * 768 / 256)
    assert load_config(None, ["optim.lr=0.05"]).learning_rate() == 0.05


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) lossy; valid keys: data, "):
        load_config(None, ["lossy.tau=1"])
    with pytest.raises(ValueError, match="loss.temp; valid keys in loss: w_contrastive, tau"):
        load_config(None, ["loss.temp=0.2"])
    with pytest.raises(ValueError, match="data.batch_size must be int, got 'big'"):
        load_config(None, ["data.batch_size=big"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ValueError, match="amp must be one of none, bf16, fp16"):
        load_config(None, ["amp=fp8"])
    with pytest.raises(ValueError, match="milestones must be increasing"):
        load_config(None, ["optim.milestones=[3, 1]"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    # YAML reads 1e-4 as a string; float fields accept it, ints become floats
    config = load_config(None, ["optim.weight_decay=1e-4", "loss.tau=1", "data.kwargs.n=5"])
    assert config.optim.weight_decay == 1e-4 and config.loss.tau == 1.0
    assert isinstance(config.loss.tau, float) and config.data.kwargs == {"n": 5}


@pytest.mark.parametrize(("override", "message"), [
    ("optim.gamma=0", r"optim.gamma must be > 0 .*got 0.0"),
    ("optim.gamma=-0.1", r"optim.gamma must be > 0"),
    ("optim.lr=.nan", r"optim.lr must be a finite number, got nan"),
    ("optim.lr=.inf", r"optim.lr must be a finite number, got inf"),
    ("optim.lr=1e6", r"learning rate must be in \(0, 10\], got optim.lr=1000000.0"),
    ("optim.lr=0", r"learning rate must be in \(0, 10\], got optim.lr=0.0"),
    ("optim.base_lr=100", r"got optim.base_lr \* data.batch_size / 256 = 100.0 \* 768 / 256"),
    ("optim.momentum=1.5", r"optim.momentum must be in \[0, 1\)"),
    ("optim.weight_decay=-1", r"optim.weight_decay must be >= 0"),
    ("loss.tau=0", r"loss.tau must be a positive finite number"),
    ("loss.w_align=.nan", r"loss.w_align must be a finite number"),
    ("device=banana", r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'banana'"),
    ("device=cuda:x", r"device must be .*got 'cuda:x'"),
    ("data.subset=0", r"data.subset must be >= 1"),
    ("data.batch_size=1", r"data.batch_size must be >= 2 \(uniformity and contrastive"),
    ("queue.momentum=1", r"queue.momentum must be in \[0, 1\) .*got 1.0"),
    ("queue.momentum=-0.1", r"queue.momentum must be in \[0, 1\)"),
    ("queue.size=-1", r"queue.size must be >= 0"),
    ("queue.size=1000", r"queue.size=1000 must be a multiple of the global batch "
                        r"data.batch_size=768 .*nearest valid sizes: 768 and 1536"),
    ("queue.size=65536", r"nearest valid sizes: 65280 and 66048"),
    ("queue.size=100", r"nearest valid sizes: 768$"),
])
def test_config_refuses_values_no_run_can_use(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_loss_errors_read_as_config_keys():
    with pytest.raises(ValueError, match=r"^bad loss section: at least one weight must be "
                       r"positive, got \{'w_contrastive': 0.0, 'w_align': 0.0"):
        load_config(None, ["loss.w_align=0", "loss.w_uniform=0"])  # not "loss.at least one"
    with pytest.raises(ValueError, match=r"^bad dense section: dense.tau must be"):
        load_config(None, ["dense.w_contrastive=1", "dense.tau=-1"])


def test_a_queue_needs_a_loss_term_that_uses_negatives():
    base = ["queue.size=1536"]
    assert load_config(None, base).queue.size == 1536  # align + uniform: uniform uses it
    with pytest.raises(ValueError, match=r"bad loss section with queue.size=1536: no loss term "
                       r"uses negatives \(loss.w_align .*\); .*loss.w_contrastive "
                       r"\(MoCo's InfoNCE.*"
                       r"loss.w_uniform \(uniformity over query-queue"):
        load_config(None, [*base, "loss.w_uniform=0"])
    with pytest.raises(ValueError, match=r"loss.w_nt_xent cannot use a queue.*"
                       r"Terms that use the queue: loss.w_contrastive"):
        load_config(None, [*base, "loss.w_nt_xent=1"])
    assert load_config(None, [*base, "loss.w_uniform=0", "loss.w_contrastive=1"])


def test_config_accepts_the_devices_it_documents():
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert load_config(None, [f"device={device}"]).device == device


def test_an_override_fills_an_empty_yaml_section(tmp_path):
    path = tmp_path / "empty_section.yaml"
    path.write_text("loss:\nepochs: 2\n")  # "loss:" alone is None in YAML
    assert load_config(path, ["loss.t=3"]).loss.t == 3.0


@pytest.mark.parametrize(("text", "message"), [
    ("seed: !!python/object/apply:os.system ['echo owned']\n",
     r"bad\.yaml, line 1 column 7: could not determine a constructor for the tag "
     r"'tag:yaml.org,2002:python/object/apply:os.system' \(tags that build Python objects"),
    ("data:\n  name: [cifar10\nseed: 1\n", r"bad\.yaml, line 3 column 5: .*expected"),
])
def test_unsafe_or_broken_yaml_is_one_line_naming_the_file(tmp_path, capsys, text, message):
    from alignuniform.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(bad)
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(bad) in err
    assert not (tmp_path / "run").exists()
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("seed: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.yaml: not UTF-8 text"):
        load_config(latin1)
    with pytest.raises(ValueError, match=r"override 'loss.t=\[1': not a YAML value \(line 1"):
        load_config(None, ["loss.t=[1"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    load_config(path)


def test_paper_configs_are_shipped():
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    assert {"stl10_align_uniform.yaml", "stl10_contrastive.yaml", "cifar10_align_uniform.yaml",
            "cifar10_contrastive.yaml", "cifar10_cpu_align_uniform.yaml",
            "cifar10_cpu_contrastive.yaml"} <= names
    au = load_config(CONFIGS / "stl10_align_uniform.yaml")
    assert (au.loss.w_align, au.loss.alpha, au.loss.w_uniform, au.loss.t) == (1, 2, 1, 2)
    assert au.loss.w_contrastive == 0 and au.model.name == "small_alexnet"
    assert au.data.split == "train+unlabeled" and au.data.recipe == "stl10"
    assert au.data.batch_size == 768 and au.epochs == 200
    contrastive = load_config(CONFIGS / "stl10_contrastive.yaml")
    assert contrastive.loss.w_contrastive == 1 and contrastive.loss.tau == 0.19
    assert contrastive.loss.w_align == contrastive.loss.w_uniform == 0


def test_run_directory_logs_checkpoint_and_monitor(tmp_path):
    # per-sample augmentation in the DataLoader here; the other tests use the batched path
    config = load_config(_tiny(tmp_path), ["data.batched_augment=false", "epochs=2"])
    calls = []

    def monitor(model, epoch):
        calls.append((epoch, model.training))
        return {"probe": 0.5 + epoch, "broken": float("nan")}

    out = train(config, tmp_path / "run", monitor=monitor, progress=False)
    assert calls == [(1, False), (2, False)]  # the monitor sees the bare model in eval mode
    steps = _lines(out / "log.jsonl")
    assert [s["step"] for s in steps] == list(range(1, 7))  # 2 epochs x 48 / 16
    assert set(steps[0]) == {"step", "epoch", "lr", "loss", "align", "uniform"}
    assert steps[0]["loss"] == pytest.approx(steps[0]["align"] + steps[0]["uniform"], abs=1e-5)
    epochs = _lines(out / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[1]["heldout_probe"] == 2.5
    assert epochs[0]["heldout_broken"] is None  # strict JSON: NaN is null
    assert epochs[0]["images_per_s"] > 0 and epochs[0]["wall_s"] > 0
    mean_loss = sum(s["loss"] for s in steps[:3]) / 3
    assert epochs[0]["loss"] == pytest.approx(mean_loss)
    assert load_config(out / "config.yaml") == config
    state = load_checkpoint(out / "checkpoint.pt")
    assert {"model", "optimizer", "scheduler", "rng", "config", "epoch", "step"} <= set(state)
    assert (state["epoch"], state["step"]) == (2, 6)
    model, stored = load_encoder(out / "checkpoint.pt")
    assert stored == config and model.feat_dim == 8
    with pytest.raises(ValueError, match="--resume"):
        train(config, out, progress=False)
    with pytest.raises(ValueError, match="differs from the run's in loss.t"):
        train(load_config(out / "config.yaml", ["loss.t=3"]), out, resume=True, progress=False)


QUEUE = {"size": 32, "momentum": 0.9}  # two batches of 16: the queue wraps every 2 steps


def test_queue_run_logs_moco_terms_and_checkpoints_the_key_encoder_and_queue(tmp_path):
    config = load_config(_tiny(tmp_path, queue=QUEUE), ["loss.w_contrastive=0.5",
                                                        "loss.tau=0.2", "epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    steps = _lines(out / "log.jsonl")
    assert len(steps) == 3 and set(steps[0]) == {"step", "epoch", "lr", "loss", "contrastive",
                                                 "align", "uniform"}
    state = load_checkpoint(out / "checkpoint.pt")
    mq = state["momentum_queue"]
    assert int(mq["ptr"]) == 3 * 16 % 32 and mq["queue"].shape == (32, 8)
    torch.testing.assert_close(mq["queue"].norm(dim=1), torch.ones(32))
    # the key encoder is an EMA of the query encoder: it moved, and less than the model
    from alignuniform.models import build_model

    init = build_model("small_cnn", feat_dim=8, seed=0, width=4, hidden_dim=16).head.weight
    key = mq["key_encoder.head.weight"]
    assert 0 < (key - init).abs().max() < (state["model"]["head.weight"] - init).abs().max()


@pytest.mark.slow
@pytest.mark.parametrize("queue", [None, QUEUE], ids=["in_batch", "queue"])
def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, queue):
    # random augmentation, 3 steps per epoch; with a queue, also the key encoder and queue
    config_path = _tiny(tmp_path, **({"queue": queue} if queue else {}))
    config = load_config(config_path)
    reference = train(config, tmp_path / "reference", progress=False)

    run = tmp_path / "killed"
    steps = kill_mid_epoch(config_path, run)
    saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["epoch"] == 1 and steps[-1]["step"] > saved["step"]  # killed mid-epoch 2

    train(config, run, resume=True, progress=False)
    final, expected = (load_checkpoint(p / "checkpoint.pt") for p in (run, reference))
    assert final["step"] == expected["step"] == 9
    for name, value in expected["model"].items():
        assert torch.equal(final["model"][name], value), name
    if queue:
        assert set(final["momentum_queue"]) == set(expected["momentum_queue"])
        for name, value in expected["momentum_queue"].items():
            assert torch.equal(final["momentum_queue"][name], value), name
    # the logs hold each step once, with the uninterrupted run's values
    assert _lines(run / "log.jsonl") == _lines(reference / "log.jsonl")
    assert [e["epoch"] for e in _lines(run / "epochs.jsonl")] == [1, 2, 3]


def test_bf16_autocast_keeps_the_losses_finite(tmp_path):
    config = load_config(_tiny(tmp_path), ["amp=bf16", "epochs=1", "loss.w_contrastive=1",
                                           "loss.tau=0.05"])
    out = train(config, tmp_path / "bf16", progress=False)
    losses = [s["loss"] for s in _lines(out / "log.jsonl")]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        train(load_config(_tiny(tmp_path), ["amp=fp16"]), tmp_path / "fp16", progress=False)


def test_resume_drops_log_lines_after_the_checkpoint_and_a_partial_last_line(tmp_path):
    from alignuniform.train.run_dir import trim_jsonl

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')  # killed while writing
    trim_jsonl(log, "step", 2)
    assert _lines(log) == [{"step": 1}, {"step": 2}]


def test_tensorboard_is_optional_with_a_clear_error(tmp_path):
    config = load_config(_tiny(tmp_path), ["tensorboard=true", "epochs=1"])
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'alignuniform\[tensorboard\]'"):
            train(config, tmp_path / "tb", progress=False)
        assert not (tmp_path / "tb").exists()  # refused before writing anything
    else:
        out = train(config, tmp_path / "tb", progress=False)
        assert any((out / "tb").iterdir())


# ---------------------------------------------------------------------------------------------
# runs under faults


@pytest.fixture
def no_data(monkeypatch):
    """Make data loading (training's and the CLI monitor's) fail loudly: a check that must
    come first then shows it did."""
    import alignuniform.data
    from alignuniform.train import engine

    def refuse(*args, **kwargs):
        raise AssertionError("the data were loaded before the check")

    monkeypatch.setattr(engine, "build_train_set", refuse)
    monkeypatch.setattr(alignuniform.data, "build_run_splits", refuse)


def test_a_second_process_on_the_same_out_is_refused_naming_the_holder(tmp_path):
    from alignuniform.io import RunLock, RunLockedError

    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from alignuniform.io import RunLock; "
         f"lock = RunLock({str(out)!r}); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunLockedError, match=rf"{out} is in use by pid {holder.pid} "):
            train(config, out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.stdin.close()  # the holder exits, and the OS drops its lock
        holder.wait(timeout=60)

    seen = []

    def monitor(model, epoch):  # mid-run: the lock is held for the run's life
        with pytest.raises(RunLockedError, match=f"in use by pid {os.getpid()} "):
            RunLock(out)
        seen.append(epoch)
        return {}

    train(config, out, monitor=monitor, progress=False)
    assert seen == [1]
    RunLock(out).release()  # and dropped when the run ends


def test_an_unusable_out_or_device_is_refused_before_the_data_load(tmp_path, no_data,
                                                                  monkeypatch):
    config = load_config(_tiny(tmp_path), ["epochs=1"])
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ValueError, match=f"output folder {not_a_dir} exists and is not a folder"):
        train(config, not_a_dir, progress=False)
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o500)
        with pytest.raises(ValueError, match=f"cannot write to output folder {read_only}"):
            train(config, read_only, progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"device '{device}': no CUDA GPU is available"):
            train(load_config(_tiny(tmp_path), [f"device={device}"]), tmp_path / "gpu",
                  progress=False)
    assert not (tmp_path / "gpu").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device 'cuda:2': there are 2 CUDA devices"):
        train(load_config(_tiny(tmp_path), ["device=cuda:2"]), tmp_path / "gpu", progress=False)


def test_cli_checks_out_before_the_monitor_loads_data(tmp_path, no_data, capsys):
    from alignuniform.cli import main

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    code = main(["train", "--config", str(_tiny(tmp_path)), "--out", str(not_a_dir),
                 "--monitor", "--no-progress"])
    assert code == 2 and "exists and is not a folder" in capsys.readouterr().err


def test_a_bad_checkpoint_to_resume_is_refused_before_the_data_load(tmp_path, request):
    from alignuniform.checkpoint import save_checkpoint

    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    request.getfixturevalue("no_data")
    with pytest.raises(ValueError, match="differs from the run's in loss.t, optim.gamma;"):
        train(load_config(out / "config.yaml", ["loss.t=3", "optim.gamma=0.5"]), out,
              resume=True, progress=False)
    log = out / "log.jsonl"
    log.write_text('{"step": 1}\n{"st\n{"step": 2}\n')  # not a partial last line: named
    with pytest.raises(ValueError, match=rf"{log}, line 2: not valid JSON"):
        train(config, out, resume=True, progress=False)
    save_checkpoint(out / "checkpoint.pt", {"model": {}})
    with pytest.raises(ValueError, match="checkpoint.pt is not a training checkpoint"):
        train(config, out, resume=True, progress=False)
    (out / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{out / 'checkpoint.pt'} is empty"):
        train(config, out, resume=True, progress=False)


def test_resume_cleans_stale_temps_and_tolerates_partial_last_lines(tmp_path):
    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    stale = out / ".checkpoint.pt.4242.deadbeef.tmp"  # what kill -9 mid-save leaves
    stale.write_bytes(b"half a checkpoint")
    for name in ("log.jsonl", "epochs.jsonl"):
        with open(out / name, "a") as f:
            f.write('{"step": 99, "epoch": 9')  # killed while appending
    train(load_config(out / "config.yaml", ["epochs=2"]), out, resume=True, progress=False)
    assert not stale.exists()
    assert [s["step"] for s in _lines(out / "log.jsonl")] == list(range(1, 7))
    assert [e["epoch"] for e in _lines(out / "epochs.jsonl")] == [1, 2]


def test_the_old_place_of_global_batch_is_read_and_old_checkpoints_resume(tmp_path):
    from alignuniform.checkpoint import save_checkpoint

    # files written when global_batch sat in the loss section
    old = load_config(_tiny(tmp_path, loss={"w_align": 1.0, "w_uniform": 1.0,
                                            "global_batch": False}))
    assert old.global_batch is False and not hasattr(old.loss, "global_batch")
    assert load_config(_tiny(tmp_path), ["loss.global_batch=false"]).global_batch is False
    assert load_config(_tiny(tmp_path)).global_batch is True
    with pytest.raises(ValueError, match="one setting .*give only global_batch"):
        load_config(_tiny(tmp_path), ["loss.global_batch=false", "global_batch=false"])
    # a checkpoint whose stored config has loss.global_batch resumes, and a different value
    # is refused as a config change
    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    stored = state["config"]
    stored["loss"]["global_batch"] = stored.pop("global_batch")
    save_checkpoint(out / "checkpoint.pt", state)
    train(load_config(out / "config.yaml", ["epochs=2"]), out, resume=True, progress=False)
    assert [e["epoch"] for e in _lines(out / "epochs.jsonl")] == [1, 2]
    state = load_checkpoint(out / "checkpoint.pt")
    state["config"]["loss"]["global_batch"] = False
    del state["config"]["global_batch"]
    save_checkpoint(out / "checkpoint.pt", state)
    with pytest.raises(ValueError, match="differs from the run's in global_batch"):
        train(load_config(out / "config.yaml", ["epochs=3"]), out, resume=True, progress=False)


# the meta model ignores the loaded weights (a no-op copy, with a warning per tensor)
@pytest.mark.filterwarnings("ignore:.*meta parameter:UserWarning")
def test_resume_on_another_device_restores_the_rng_from_a_cpu_load(tmp_path, monkeypatch):
    """A GPU run's resume, simulated: torch.load(map_location=<the run's device>) put the RNG
    states there and torch.set_rng_state raised TypeError. "meta" stands in for the GPU;
    the epochs are done, so the run only restores and returns."""
    from alignuniform.distributed import DistributedContext
    from alignuniform.train import engine

    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    saved = load_checkpoint(out / "checkpoint.pt")
    monkeypatch.setattr(engine, "init_from_env",
                        lambda device: DistributedContext(0, 1, 0, torch.device("meta")))
    torch.manual_seed(123)
    train(config, out, resume=True, progress=False)
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])


# ---------------------------------------------------------------------------------------------
# random init = the architecture as training starts it


def test_a_seeded_build_is_one_model_and_leaves_the_callers_rng(tmp_path):
    from alignuniform.models import build_model

    state = torch.get_rng_state()
    a, b = (build_model("small_cnn", feat_dim=8, width=4, seed=3) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), state)
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    other = build_model("small_cnn", feat_dim=8, width=4, seed=4)
    assert not torch.equal(other.head.weight, a.head.weight)


def test_random_init_evaluates_the_encoder_as_training_starts_it(tmp_path, monkeypatch):
    from alignuniform.checkpoint import save_checkpoint
    from alignuniform.evaluate import checkpoint_eval
    from alignuniform.models import build_model

    spec = {"name": "small_alexnet", "feat_dim": 8, "kwargs": {"image_size": 32}}
    trained = build_model(spec["name"], feat_dim=8, image_size=32, seed=0)
    for p in trained.parameters():
        p.data.add_(1.0)  # "trained": anything but the initial weights
    path = save_checkpoint(tmp_path / "checkpoint.pt", {
        "model": trained.state_dict(),
        "config": {"model": spec, "data": {"name": "synthetic", "recipe": "cifar10",
                                           "kwargs": {"n": 20}}},
    })
    seen = []
    monkeypatch.setattr(checkpoint_eval, "evaluate_encoder",
                        lambda model, *a, **k: seen.append(model) or {})
    checkpoint_eval.evaluate_checkpoint(path, random_init=True, seed=5, device="cpu")
    (model,) = seen
    fresh = build_model(spec["name"], feat_dim=8, image_size=32, seed=5)
    for (name, got), want in zip(model.state_dict().items(), fresh.state_dict().values(),
                                 strict=True):
        assert torch.equal(got, want), name
    assert not model.training
    # SmallAlexNet's own init, N(0, 0.02); reset_parameters() would give PyTorch's Kaiming-
    # uniform defaults, std 1/sqrt(3 * fan_in) = 0.11 for conv1 (fan_in 27)
    assert model.convs["conv1"][0].weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_training_starts_from_the_seeded_build(tmp_path):
    from alignuniform.models import build_model
    from alignuniform.train import engine

    config = load_config(_tiny(tmp_path), ["epochs=1", "seed=7"])
    expected = build_model(config.model.name, feat_dim=8, seed=7, **config.model.kwargs)
    run = engine._Run(config, tmp_path / "run", engine.init_from_env("cpu"))
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, expected.state_dict()[name]), name


@pytest.mark.parametrize("batched", ["true", "false"])
def test_data_augment_reaches_the_training_views(tmp_path, batched):
    # with every component off the two views of an image coincide, so alignment is exactly 0
    config = load_config(_tiny(tmp_path, epochs=1), [f"data.batched_augment={batched}",
                                                     "data.augment={base: none}"])
    out = train(config, tmp_path / "run", progress=False)
    assert {s["align"] for s in _lines(out / "log.jsonl")} == {0.0}
    with pytest.raises(ValueError, match="unknown augmentation component 'blurr'|'blurr'"):
        load_config(_tiny(tmp_path), ["data.augment={blurr: true}"])


# ---------------------------------------------------------------------------------------------
# MoCo configs


def test_imagenet100_moco_configs_are_the_forks_and_gpu_only():
    au = load_config(CONFIGS / "imagenet100_moco_align_uniform.yaml")
    assert (au.loss.w_align, au.loss.alpha, au.loss.w_uniform, au.loss.t) == (3, 2, 1, 3)
    assert au.loss.w_contrastive == 0 and au.queue.intra_batch
    contrastive = load_config(CONFIGS / "imagenet100_moco.yaml")
    assert contrastive.loss.w_contrastive == 1 and contrastive.loss.tau == 0.07
    assert contrastive.loss.w_align == contrastive.loss.w_uniform == 0
    for config in (au, contrastive):
        assert (config.queue.size, config.queue.momentum) == (65536, 0.999)
        assert config.data.batch_size == 128 and config.learning_rate() == 0.03
        assert config.model.name == "resnet50" and config.data.name == "imagefolder"
        assert config.device == "cuda"  # refused at once on a machine without a GPU


@pytest.mark.parametrize("loss", ["align_uniform", "contrastive"])
def test_cpu_queue_configs_differ_from_the_in_batch_ones_only_by_the_queue(loss):
    queue = load_config(CONFIGS / f"cifar10_cpu_{loss}_queue.yaml").to_dict()
    in_batch = load_config(CONFIGS / f"cifar10_cpu_{loss}.yaml").to_dict()
    assert queue.pop("queue") == {"size": 4096, "momentum": 0.99, "shuffle_bn": False,
                                  "intra_batch": True}
    in_batch.pop("queue")
    assert queue == in_batch


def test_resnet50_is_torchvisions_with_a_moco_head():
    from alignuniform.models import build_model

    model = build_model("resnet50", feat_dim=16, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    z = model(x)
    assert z.shape == (2, 16) and torch.allclose(z.norm(dim=1), torch.ones(2))
    assert model.features(x).shape == (2, 2048) and isinstance(model.head, torch.nn.Linear)
    assert len(build_model("resnet50", feat_dim=16, mlp=True).head) == 3


def test_bf16_autocast_with_a_queue_keeps_the_losses_finite(tmp_path):
    config = load_config(_tiny(tmp_path, queue=QUEUE), ["amp=bf16", "epochs=1",
                                                        "loss.w_contrastive=1", "loss.tau=0.05"])
    out = train(config, tmp_path / "bf16", progress=False)
    losses = [s["loss"] for s in _lines(out / "log.jsonl")]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert load_checkpoint(out / "checkpoint.pt")["momentum_queue"]["queue"].dtype == torch.float32


def test_resume_refuses_a_checkpoint_whose_bytes_were_damaged(tmp_path):
    """2,000 bytes flipped inside an optimizer buffer unpickle fine; the checksum refuses them
    (before it, the resumed run trained on from corrupted momentum)."""
    config = load_config(_tiny(tmp_path), ["epochs=1"])
    out = train(config, tmp_path / "run", progress=False)
    ckpt = out / "checkpoint.pt"
    buffers = [v for s in torch.load(ckpt, weights_only=True)["optimizer"]["state"].values()
               for v in s.values() if isinstance(v, torch.Tensor) and v.numel() >= 500]
    raw = bytearray(ckpt.read_bytes())
    at = raw.index(buffers[0].numpy().tobytes()[:64])
    raw[at:at + 2000] = bytes(b ^ 0xFF for b in raw[at:at + 2000])
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{ckpt} is corrupt"):
        train(load_config(out / "config.yaml", ["epochs=2"]), out, resume=True, progress=False)


def test_a_queue_larger_than_an_epoch_warns_and_a_smaller_one_does_not(tmp_path):
    import warnings

    # 48 images in batches of 16: an epoch enqueues 48 keys
    with pytest.warns(UserWarning, match=r"queue.size=64 is larger than the 48 keys an epoch "
                      r"enqueues \(3 batches of 16\): for the first 2 epochs .*queue.size=16\)"):
        train(load_config(_tiny(tmp_path), ["epochs=1", "queue.size=64"]), tmp_path / "big",
              progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="queue.size")
        train(load_config(_tiny(tmp_path), ["epochs=1", "queue.size=32"]), tmp_path / "small",
              progress=False)
