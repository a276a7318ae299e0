import json
import math
import os
import stat
import time

import pytest

from alignuniform import io


def test_atomic_write_respects_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        path = io.atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    finally:
        os.umask(old)
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp would give 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.txt"]


def test_atomic_write_keeps_old_content_when_the_writer_fails(tmp_path):
    path = io.atomic_write_text(tmp_path / "x.txt", "old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".checkpoint.pt.123.abcd.tmp").write_bytes(b"x")
    (tmp_path / "checkpoint.pt").write_bytes(b"y")
    removed = io.remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".checkpoint.pt.123.abcd.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_remove_stale_temps_older_than_spares_live_writes(tmp_path):
    old, live = tmp_path / ".a.npz.1.ab.tmp", tmp_path / ".b.npz.2.cd.tmp"
    old.write_bytes(b"x")
    live.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert io.remove_stale_temps(tmp_path, older_than=3600) == [old]
    assert live.exists() and not old.exists()


def test_write_json_is_strict(tmp_path):
    with pytest.raises(ValueError, match="strict JSON"):
        io.write_json(tmp_path / "r.json", {"x": -math.inf})
    assert not (tmp_path / "r.json").exists()
    io.write_json(tmp_path / "r.json", {"x": 1.5})
    assert io.read_json(tmp_path / "r.json") == {"x": 1.5}


def test_read_json_names_the_file_when_truncated(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"a": 1, "b": 2}, indent=2)[:-5])
    with pytest.raises(ValueError, match=r"eval\.json, line \d+ column \d+"):
        io.read_json(path)


def test_read_json_names_the_line_of_bad_utf8(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{\n"a": "\xff"}\n')
    with pytest.raises(ValueError, match=r"x\.json, line 2: not UTF-8"):
        io.read_json(path)


def test_read_jsonl_skips_a_partial_last_line_only(tmp_path):
    path = tmp_path / "epochs.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert io.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"epochs\.jsonl, line 2"):
        io.read_jsonl(path)


def test_check_writable_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        io.check_writable_dir(tmp_path / "file")
    # a run folder under a file cannot be created (a read-only mount fails the same way,
    # but root writes through permission bits, so this is the case a test can make)
    with pytest.raises(ValueError, match="cannot write to output folder"):
        io.check_writable_dir(tmp_path / "file" / "run")


def test_run_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    first = io.RunLock(tmp_path)
    with pytest.raises(io.RunLockedError, match=f"pid {os.getpid()}"):
        io.RunLock(tmp_path)
    first.release()
    with io.RunLock(tmp_path) as again:
        assert again.held


def test_json_takes_numpy_and_torch_scalars_and_arrays():
    import numpy as np
    import torch

    obj = {"a": np.float32(1.5), "b": torch.tensor([1, 2]), "c": np.arange(2),
           "d": torch.tensor(3.0)}
    assert json.loads(io.to_json(obj)) == {"a": 1.5, "b": [1, 2], "c": [0, 1], "d": 3.0}
