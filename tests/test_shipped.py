"""alignuniform.shipped: the shipped recipes, read from a checkout or a wheel's package data."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignuniform import shipped
from alignuniform.cli import main
from alignuniform.train import load_config

REPO = Path(__file__).resolve().parents[1]


def test_every_repository_config_is_listed_with_a_description():
    listed = {r.name: r for r in shipped.list_recipes("configs")}
    on_disk = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert set(listed) == on_disk
    for r in listed.values():
        assert r.path.parent == REPO / "configs"  # the source itself, no copy
        assert r.description and not r.description.startswith("#")
        assert r.description[-1] in ".?!"


def test_every_repository_sweep_is_listed_with_a_description():
    listed = {r.name: r for r in shipped.list_recipes("sweeps")}
    on_disk = {p.stem for p in (REPO / "sweeps").glob("*.yaml")}
    assert "mnist1d_study" in on_disk  # the checkout's sweeps/ was read
    assert set(listed) == on_disk
    for r in listed.values():
        assert r.path.parent == REPO / "sweeps"  # the source itself, no copy
        assert r.description and r.description[-1] in ".?!"


def test_description_is_the_first_sentence_of_the_header(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("# One line. Two\n# continues here.\n#   alignuniform train ...\nepochs: 1\n")
    assert shipped._description(f) == "One line."
    f.write_text("# Spread over\n# two lines\n#\n# more\nepochs: 1\n")
    assert shipped._description(f) == "Spread over two lines"
    f.write_text("# Which pairs? As in Chen et al. 2020, e.g. crops.\n")
    assert shipped._description(f) == "Which pairs?"
    f.write_text("# As in Chen et al. 2020, e.g. crops. More\n")
    assert shipped._description(f) == "As in Chen et al. 2020, e.g. crops."
    f.write_text("epochs: 1\n")
    assert shipped._description(f) == ""


@pytest.mark.parametrize("text", ["mnist1d_align_uniform", "mnist1d_align_uniform.yaml",
                                  "configs/mnist1d_align_uniform.yaml"])
def test_resolve_by_name_from_any_folder(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped.resolve_recipe(text) == REPO / "configs" / "mnist1d_align_uniform.yaml"
    config = load_config(text, ["epochs=1"])
    assert (config.data.name, config.epochs) == ("mnist1d", 1)


def test_a_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist1d_align_uniform").write_text("epochs: 3\n")
    assert shipped.resolve_recipe("mnist1d_align_uniform") == Path("mnist1d_align_uniform")
    assert load_config("mnist1d_align_uniform").epochs == 3


def test_unknown_name_lists_the_shipped_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config file .*stl10_align_uniform"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(FileNotFoundError, match="no shipped recipe"):
        shipped.resolve_recipe("nope", kind=None)
    with pytest.raises(ValueError, match="unknown recipe kind"):
        shipped.recipe_dir("models")


def test_packaged_copy_is_used_outside_a_checkout(tmp_path, monkeypatch):
    """What an installed wheel sees: no repository, the recipes under alignuniform/_recipes."""
    pkg = tmp_path / "alignuniform" / "_recipes" / "configs"
    pkg.mkdir(parents=True)
    (pkg / "tiny.yaml").write_text("# A tiny recipe.\nepochs: 2\n")
    monkeypatch.setattr(shipped, "_source_root", lambda: None)
    monkeypatch.setattr(shipped.resources, "files", lambda _: tmp_path / "alignuniform")
    assert [(r.name, r.description) for r in shipped.list_recipes()] == [
        ("tiny", "A tiny recipe.")]
    assert shipped.resolve_recipe("tiny") == pkg / "tiny.yaml"
    assert shipped.recipe_dir("sweeps") is None


def test_configs_cli(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("configs:\n")
    assert "stl10_align_uniform" in out and "Wang & Isola (ICML 2020), STL-10" in out
    assert main(["configs", "show", "stl10_contrastive"]) == 0
    assert capsys.readouterr().out == (REPO / "configs" / "stl10_contrastive.yaml").read_text()
    assert main(["configs", "path", "configs/stl10_contrastive.yaml"]) == 0
    assert capsys.readouterr().out.strip() == str(REPO / "configs" / "stl10_contrastive.yaml")
    assert main(["configs", "show"]) == 2
    assert main(["configs", "show", "nope"]) == 2
    assert "no shipped recipe" in capsys.readouterr().err


def test_wheel_build_hook_lists_the_recipes(tmp_path):
    """setup.py's build_py copies configs/ and sweeps/ into the wheel's package."""
    import runpy

    from setuptools import Distribution

    ns = runpy.run_path(str(REPO / "setup.py"), run_name="not_main_setup_py")
    cmd = ns["BuildPyWithRecipes"](Distribution())
    cmd.build_lib = str(tmp_path)
    dests = {d.relative_to(tmp_path).as_posix() for _, d in cmd._recipe_files()}
    assert "alignuniform/_recipes/configs/stl10_align_uniform.yaml" in dests
    assert len(dests) == len(list((REPO / "configs").glob("*.yaml"))) + len(
        list((REPO / "sweeps").glob("*.yaml")))


def test_configs_cli_copies_with_out(tmp_path, capsys):
    assert main(["configs", "show", "mnist1d_contrastive", "--out", str(tmp_path)]) == 0
    copied = tmp_path / "mnist1d_contrastive.yaml"
    assert copied.read_text() == (REPO / "configs" / "mnist1d_contrastive.yaml").read_text()
    assert load_config(copied).loss.tau == 0.5
    assert main(["configs", "show", "mnist1d_contrastive", "--out", str(tmp_path)]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert main(["configs", "--out", str(tmp_path / "all")]) == 0
    assert {p.name for p in (tmp_path / "all").glob("*.yaml")} == {
        p.name for p in (REPO / "configs").glob("*.yaml")}
