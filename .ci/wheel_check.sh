#!/usr/bin/env bash
# The package as a pip user gets it: build the sdist and the wheel (the wheel from the sdist,
# so a file missing from the sdist shows), check their metadata with twine, install the wheel
# (not editable) into a fresh virtual environment and use it from a folder outside the
# repository: the README's first Python example (its quick-start), `alignuniform configs`,
# and one epoch of training from a shipped recipe given by name.
#
# The fresh venv gets only the wheel (--no-deps, --no-index). Its dependencies (torch and
# the rest, gigabytes) are not downloaded again: a .pth file appends the project venv's
# site-packages to its sys.path. Python does not run the .pth files of a folder added that
# way, so the project's editable install (a finder mapping alignuniform to src/) stays
# inactive, and the venv's own copy of alignuniform, installed from the wheel, comes first on
# sys.path; the script checks that the package, its recipes and the console script all come
# from the wheel. PYTHON: the project venv's python (make wheel-check passes .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-.venv/bin/python}
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alignuniform-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - start)); }

step "build sdist and wheel (no isolation: the project venv's setuptools, nothing downloaded)"
"$PYTHON" -m build --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
ls "$WORK/dist"
wheel=$(ls "$WORK"/dist/alignuniform-*.whl)

step "twine check"
"$PYTHON" -m twine check --strict "$WORK"/dist/*

step "wheel contents: recipes and py.typed"
"$PYTHON" - "$wheel" "$REPO" <<'PY'
import sys, zipfile
from pathlib import Path
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
repo = Path(sys.argv[2])
want = {f"alignuniform/_recipes/{k}/{p.name}" for k in ("configs", "sweeps")
        for p in sorted((repo / k).glob("*.yaml"))}
missing = sorted(want - names) + ([] if "alignuniform/py.typed" in names else ["py.typed"])
assert not missing, f"missing from the wheel: {missing}"
print(f"{len(want)} recipes and py.typed in {Path(sys.argv[1]).name}")
PY

step "fresh venv with the wheel"
"$PYTHON" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install --quiet --no-deps --no-index "$wheel"
site_new=$("$V/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
  >"$site_new/_alignuniform_ci_deps.pth"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset PYTHONPATH

step "the package comes from the wheel"
"$V/python" - "$site_new" "$REPO" <<'PY'
import sys
from importlib import metadata
from pathlib import Path
import alignuniform
from alignuniform import shipped
site, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
pkg = Path(alignuniform.__file__).resolve()
assert pkg.is_relative_to(site), f"alignuniform imported from {pkg}, not the wheel"
assert alignuniform.__version__ == metadata.version("alignuniform"), "two versions"
folder = shipped.recipe_dir("configs")
assert folder is not None and folder.resolve().is_relative_to(site), folder
print(f"alignuniform {alignuniform.__version__} from {pkg.parent}; recipes in {folder}")
PY
head -1 "$V/alignuniform" | grep -q "$WORK/venv/" || { echo "console script not the venv's"; exit 1; }

step "the README's Python quick-start"
"$PYTHON" - "$REPO/README.md" >quickstart.py <<'PY'
import re, sys
blocks = re.findall(r"```python\n(.*?)```", open(sys.argv[1], encoding="utf-8").read(), re.S)
assert blocks, "no python block in README.md"
print(blocks[0])
PY
"$V/python" quickstart.py

step "alignuniform configs"
"$V/alignuniform" configs
"$V/alignuniform" configs show mnist1d_align_uniform >/dev/null

step "one epoch from a shipped recipe by name"
"$V/alignuniform" train --config mnist1d_align_uniform --out run epochs=1 --no-progress
test -s run/checkpoint.pt && test -s run/epochs.jsonl
cat run/epochs.jsonl

step "wheel check passed"
