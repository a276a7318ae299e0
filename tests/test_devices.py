"""Tests for alignuniform.devices: the one default and the one check of a device name."""

from __future__ import annotations

import pytest
import torch

from alignuniform.cli import main
from alignuniform.devices import check_device, default_device


def test_default_is_cuda_only_where_available(monkeypatch):
    assert default_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == default_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")


def test_missing_or_unknown_devices_are_refused_with_what_to_use(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown device 'bogus': use auto, cpu, cuda"):
        check_device("bogus")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda:0': no CUDA GPU is available here"):
        default_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"'cuda:2': there are 2 CUDA devices \(cuda:0 to cuda:1"):
        check_device("cuda:2")


@pytest.mark.parametrize("device, message", [("bogus", "unknown device 'bogus'"),
                                             ("cuda", "no CUDA GPU is available")])
def test_eval_device_errors_are_one_line_before_the_checkpoint_loads(
        tmp_path, monkeypatch, capsys, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", str(tmp_path / "missing.pt"), "--device", device,
                 "--out", str(tmp_path / "e"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alignuniform eval: error:") and message in err and err.count("\n") == 1
