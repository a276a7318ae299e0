"""Tests for the command line's conventions: common options, errors, a torch-free --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from alignuniform.cli import build_parser, main
from alignuniform.io import RunLockedError

SRC = Path(__file__).resolve().parents[1] / "src"


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every runnable subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*prefix, name))


LEAVES = dict((" ".join(words), p) for words, p in _leaves(build_parser()))


def test_every_command_is_found():
    """One command per public module of ``alignuniform/cli`` (read from the folder, not from
    the discovery under test), ``text`` with its four subcommands, and nothing else."""
    modules = {p.stem for p in (SRC / "alignuniform" / "cli").glob("*.py")
               if not p.stem.startswith("_")}
    assert {"configs", "measure", "sweep", "text", "train"} <= modules  # the folder was read
    assert set(LEAVES) == modules - {"text"} | {"text eval", "text dropout", "text train",
                                                "text zoo"}


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_every_command_takes_out_seed_no_progress_debug_the_same_way(command):
    options = {opt: a for a in LEAVES[command]._actions for opt in a.option_strings}
    assert {"--out", "--seed", "--no-progress", "--debug"} <= set(options), command
    assert options["--out"].type is Path
    assert options["--seed"].type is int
    for flag in ("--no-progress", "--debug"):
        assert isinstance(options[flag], argparse._StoreTrueAction) and not options[flag].default
    args = LEAVES[command].parse_args(
        ["--out", "o", "--seed", "7", "--no-progress", "--debug"]
        + {"eval": ["ck.pt"], "report": ["run"], "measure": ["emb.npy"],
           "sweep": ["s.yaml"]}.get(command, [])
        + (["--stsb", "s"] if command.startswith("text") else [])
        + (["--sentences", "x.txt"] if command == "text train" else []))
    assert (args.out, args.seed, args.no_progress, args.debug) == (Path("o"), 7, True, True)


def test_help_does_not_import_torch():
    # in a fresh interpreter: this test process imported torch long ago
    code = (
        "import sys\n"
        "from alignuniform.cli import main\n"
        "for argv in (['--help'], ['text', 'train', '--help'], ['eval', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, stop.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no torch")
    assert "COMMAND" in proc.stdout and "--eval-every" in proc.stdout


def _failing(monkeypatch, error: BaseException) -> None:
    """Make ``alignuniform report`` raise ``error`` (the parser reads ``run`` when built)."""
    import alignuniform.cli.report as report

    def run(args):
        raise error

    monkeypatch.setattr(report, "run", run)


@pytest.mark.parametrize("error", [
    ValueError("bad value"), FileNotFoundError("no file x"), PermissionError("read-only x"),
    RunLockedError("runs/a is in use by pid 1")])
def test_input_errors_are_one_line_and_debug_shows_them(monkeypatch, capsys, error):
    _failing(monkeypatch, error)
    assert main(["report", "run"]) == 2
    err = capsys.readouterr().err
    assert err == f"alignuniform report: error: {error}\n"
    with pytest.raises(type(error)):
        main(["report", "run", "--debug"])


@pytest.mark.parametrize("error", [TypeError("a bug"), KeyError("a bug"),
                                   AttributeError("a bug")])
def test_bugs_keep_their_traceback(monkeypatch, error):
    _failing(monkeypatch, error)
    with pytest.raises(type(error)):
        main(["report", "run"])


@pytest.mark.parametrize("argv", [["demo"], ["eval", "missing.pt"], ["report", "."],
                                  ["text", "eval", "--stsb", "."], ["theory", "--quick"],
                                  ["configs", "show", "stl10_align_uniform"],
                                  ["configs", "list"], ["measure", "missing.npy"]])
def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys, argv):
    not_a_folder = tmp_path / "taken"
    not_a_folder.write_text("a file")
    assert main([*argv, "--out", str(not_a_folder), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"output folder {not_a_folder} exists and is not a folder" in err


def test_overrides_may_follow_options_in_any_order(tmp_path, monkeypatch, capsys):
    import alignuniform.train as train_module

    seen = []
    monkeypatch.setattr(train_module, "train", lambda config, out, **kw: seen.append(config) or out)
    argv = ["train", "epochs=2", "--config", "stl10_align_uniform", "--out", str(tmp_path / "r"),
            "loss.t=3", "--no-progress", "loss.t=4", "optim.lr=0.5"]
    assert main(argv) == 0
    assert (seen[0].epochs, seen[0].loss.t, seen[0].optim.lr) == (2, 4.0, 0.5)  # in order
    assert main(["train", "--config", "stl10_align_uniform", "--out", str(tmp_path / "r"),
                 "loss.nope=1"]) == 2
    assert "loss.nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an unknown option stays an error
        main(["train", "--out", str(tmp_path / "r"), "epochs=1", "--stray"])
    assert "unrecognized arguments: --stray" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # and commands without overrides take none
        main(["theory", "--out", str(tmp_path / "t"), "a=1"])
    assert "unrecognized arguments: a=1" in capsys.readouterr().err


def test_resume_into_an_empty_folder_says_it_starts_fresh(tmp_path, monkeypatch, capsys):
    import alignuniform.train as train_module

    monkeypatch.setattr(train_module, "train", lambda config, out, **kw: out)
    argv = ["train", "--config", "stl10_align_uniform", "--out", str(tmp_path / "r"), "--resume"]
    assert main(argv) == 0
    assert f"no checkpoint in {tmp_path / 'r'} to resume: starting a fresh run there" in (
        capsys.readouterr().out)
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"x")  # a run to continue: no such line
    assert main(argv) == 0 and "starting a fresh run" not in capsys.readouterr().out
