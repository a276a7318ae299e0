"""Tests for alignuniform.checkpoint: atomic saves, safe loads, rebuilding encoders."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from alignuniform import checkpoint
from alignuniform.checkpoint import load_checkpoint, load_encoder, save_checkpoint
from alignuniform.models import build_model
from alignuniform.train.config import DataConfig

MODEL_CFG = {"name": "small_cnn", "feat_dim": 8, "kwargs": {"width": 4, "hidden_dim": 16}}


def _encoder_state() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = build_model("small_cnn", feat_dim=8, width=4, hidden_dim=16)
    return model, {"model": model.state_dict(), "config": {"model": MODEL_CFG}, "epoch": 3}


def test_round_trip_of_plain_containers(tmp_path):
    state = {"a": torch.arange(5), "nested": {"b": [1, 2.5, "x"], "c": (torch.ones(2),)},
             "epoch": 7}
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", state)
    back = load_checkpoint(path)
    assert torch.equal(back["a"], state["a"]) and back["nested"]["b"] == [1, 2.5, "x"]
    assert back["epoch"] == 7 and list(path.parent.iterdir()) == [path]


def test_failed_save_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ck.pt", {"v": torch.tensor(1)})

    def crash(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"v": torch.tensor(2)})
    monkeypatch.undo()
    assert load_checkpoint(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_saves_respect_the_umask_and_sync_the_folder(tmp_path, monkeypatch):
    from alignuniform import io

    synced = []
    monkeypatch.setattr(io, "fsync_dir", lambda folder: synced.append(folder))
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "ck.pt", {"v": torch.tensor(1)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # like any file, not mkstemp's 0600
    assert synced == [tmp_path]  # the rename reaches the disk too


def test_an_empty_checkpoint_file_is_named_in_the_error(tmp_path, monkeypatch):
    empty = tmp_path / "checkpoint.pt"
    empty.write_bytes(b"")  # what a crash before the data reached the disk can leave
    with pytest.raises(ValueError, match=rf"{empty} is empty \(0 bytes\)"):
        load_checkpoint(empty)

    def fail(*args, **kwargs):
        raise EOFError  # torch.load raises this, message empty, on a cut-short pickle

    empty.write_bytes(b"x")
    monkeypatch.setattr(checkpoint.torch, "load", fail)
    with pytest.raises(ValueError, match=rf"{empty} is not a readable checkpoint .*: EOFError"):
        load_checkpoint(empty)


def test_truncated_foreign_and_unsafe_files_get_clear_errors(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.randn(100, 100)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, unsafe)  # a pickled module, not weights
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(unsafe)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a checkpoint dict"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="dict"):
        save_checkpoint(tmp_path / "x.pt", [1])


def test_load_encoder_rebuilds_the_model_from_the_stored_config(tmp_path):
    model, state = _encoder_state()
    path = save_checkpoint(tmp_path / "ck.pt", state)
    loaded, config = load_encoder(path, device="cpu")
    assert (config.model.name, config.model.feat_dim, config.model.kwargs) == (
        MODEL_CFG["name"], MODEL_CFG["feat_dim"], MODEL_CFG["kwargs"])
    assert config.data == DataConfig()  # a section the checkpoint lacks: training's default
    assert not loaded.training
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def test_load_encoder_random_init_is_the_seeded_build_of_the_stored_architecture(tmp_path):
    model, state = _encoder_state()
    path = save_checkpoint(tmp_path / "ck.pt", state)
    fresh, _ = load_encoder(path, device="cpu", random_init=True, seed=5)
    expected = build_model("small_cnn", feat_dim=8, seed=5, width=4, hidden_dim=16)
    for (name, got), want in zip(fresh.state_dict().items(), expected.state_dict().values(),
                                 strict=True):
        assert torch.equal(got, want), name
    assert not fresh.training and not torch.equal(fresh.head.weight, model.head.weight)
    # the stored weights are still checked: a misfit fails for the random init too
    state["config"]["model"] = dict(MODEL_CFG, feat_dim=9)
    with pytest.raises(ValueError, match="do not fit"):
        load_encoder(save_checkpoint(tmp_path / "bad.pt", state), random_init=True)


def test_load_encoder_errors_for_misfit_weights_or_missing_config(tmp_path):
    _, state = _encoder_state()
    state["config"]["model"] = dict(MODEL_CFG, feat_dim=9)
    with pytest.raises(ValueError, match="do not fit model 'small_cnn' with feat_dim=9"):
        load_encoder(save_checkpoint(tmp_path / "a.pt", state))
    state["config"] = {"model": MODEL_CFG, "epochs": 0}
    with pytest.raises(ValueError, match="c.pt stores a config training does not accept: "
                                         "epochs must be >= 1"):
        load_encoder(save_checkpoint(tmp_path / "c.pt", state))
    del state["config"]
    with pytest.raises(ValueError, match="not written by alignuniform.train"):
        load_encoder(save_checkpoint(tmp_path / "b.pt", state))


def _flip_inside(path, marker: bytes, n: int = 2000) -> None:
    """Flip ``n`` bytes of ``path`` starting where ``marker`` (a tensor's raw bytes) lies:
    the damage lands in tensor data, which torch's zip reader does not check."""
    raw = bytearray(path.read_bytes())
    at = raw.index(marker)
    for i in range(at, at + n):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_checkpoint_with_flipped_bytes_is_refused_naming_the_file(tmp_path):
    model, state = _encoder_state()
    momentum = torch.arange(4000, dtype=torch.float32)  # stands for an optimizer buffer
    path = save_checkpoint(tmp_path / "checkpoint.pt", {**state, "optimizer": {"m": momentum}})
    assert set(load_checkpoint(path)) == {"model", "config", "epoch", "optimizer"}
    _flip_inside(path, momentum[1000:1010].numpy().tobytes())
    # the damaged file still unpickles: only the checksum tells
    assert "checksum" in torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match=rf"{path} is corrupt: .*checksum"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="is corrupt"):
        load_encoder(path)


@pytest.mark.parametrize("change", [
    lambda s: s["w"].__setitem__(0, 1.0),           # one value
    lambda s: s.__setitem__("w", s["w"].double()),  # same values, other dtype
    lambda s: s.__setitem__("w", s["w"].view(2, 3)),  # same bytes, other shape
    lambda s: s.__setitem__("epoch", 4.0),          # int -> float of equal value
    lambda s: s.__setitem__("extra", None),         # an added entry
    lambda s: s["opt"].__setitem__(0, (1,)),        # a list entry becomes a tuple
])
def test_the_checksum_covers_values_types_and_structure(tmp_path, change):
    state = {"w": torch.zeros(6), "epoch": 4, "opt": [[1]]}
    path = save_checkpoint(tmp_path / "ck.pt", state)
    stamped = torch.load(path, weights_only=True)
    change(stamped)
    torch.save(stamped, path)  # rewritten with the old checksum: as if damaged
    with pytest.raises(ValueError, match="is corrupt"):
        load_checkpoint(path)


def test_a_checkpoint_without_a_checksum_loads_and_the_key_is_reserved(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"v": torch.tensor(1)}, foreign)  # another tool's checkpoint: nothing to check
    assert load_checkpoint(foreign)["v"].item() == 1
    with pytest.raises(ValueError, match="'checksum' is reserved"):
        save_checkpoint(tmp_path / "x.pt", {"checksum": "mine"})
