"""Pre-training on scenes (``data.scenes``): the training set is scenes pasted from the run's
own training images (subset applied, never the hold-out), seeded by the run seed; dense
training on them resumes bit-identically; evaluation still reads the images; bad values are
refused naming the key. The scenes themselves are tested in test_dense_scenes.py."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import yaml

from alignuniform.checkpoint import load_checkpoint, save_checkpoint
from alignuniform.data import build_dataset
from alignuniform.data.scenes import SceneDataset
from alignuniform.train import build_train_set, config_from_dict, load_config, train
from alignuniform.train.config import ScenesConfig
from tests.helpers import dense_config

SCENES = {"variant": "multi", "n_scenes": 16, "canvas": 32}


def _scenes_config(**scenes) -> dict:
    raw = dense_config()
    raw["data"] = {**raw["data"], "kwargs": {"n": 24}, "subset": 12,
                   "scenes": {**SCENES, **scenes}}
    return raw


def test_the_scenes_come_from_the_run_training_subset_and_seed():
    raw = _scenes_config()
    config = config_from_dict({**raw, "seed": 3})
    scenes = build_train_set(config.data, config.seed)
    assert isinstance(scenes, SceneDataset) and len(scenes) == 16
    assert (scenes.variant, scenes.canvas, scenes.seed) == ("multi", 32, 3)
    # the pool is exactly the 12 images the run would train on without scenes
    images = build_train_set(dataclasses.replace(config.data, scenes=ScenesConfig()), 3)
    pool = torch.stack([images[i][0] for i in range(len(images))])
    labels = torch.tensor([images[i][1] for i in range(len(images))])
    assert torch.equal(scenes.images, pool) and torch.equal(scenes.labels, labels)
    # ... and none of the held-out split's
    val = build_dataset("synthetic", None, "val", n=24)
    assert not any(torch.equal(img, v) for img in pool for v in val.images)
    # every pasted object is one of those images, its class painted in the label map
    for index in range(4):
        scene = scenes.scene(index)
        image, label_map = scenes[index]
        assert torch.equal(image, scene.image)
        for obj in scene.objects:
            assert obj.label == int(labels[obj.source])
        visible = set(label_map.unique().tolist()) - {scenes.background}
        assert visible <= {obj.label for obj in scene.objects}


def test_another_seed_gives_other_scenes_from_another_subset():
    raw = _scenes_config()
    a = build_train_set(config_from_dict(raw).data, 0)
    b = build_train_set(config_from_dict(raw).data, 1)
    assert not torch.equal(a[0][0], b[0][0])


def test_without_scenes_the_training_set_is_the_images():
    raw = _scenes_config()
    raw["data"]["scenes"] = None
    config = config_from_dict(raw)
    assert not config.data.scenes.active
    images = build_train_set(config.data, 0)
    assert len(images) == 12 and images[0][0].shape == (3, 32, 32)


def test_dense_training_on_scenes_resumes_bit_identically(tmp_path):
    raw = _scenes_config()
    straight = train(config_from_dict({**raw, "epochs": 2}), tmp_path / "a", progress=False)
    first = train(config_from_dict(raw), tmp_path / "b", progress=False)
    resumed = train(config_from_dict({**raw, "epochs": 2}), first, resume=True,
                    progress=False)
    a, b = (load_checkpoint(p / "checkpoint.pt")["model"] for p in (straight, resumed))
    for name, value in a.items():
        assert torch.equal(b[name], value), name
    assert (resumed / "log.jsonl").read_text() == (straight / "log.jsonl").read_text()
    # 16 scenes in batches of 4: the scenes, not the 12 images, are the epoch
    assert len((straight / "log.jsonl").read_text().splitlines()) == 2 * 4


def test_scenes_change_what_is_trained_on(tmp_path):
    images = train(config_from_dict({**_scenes_config(), "data": {
        **_scenes_config()["data"], "scenes": None}}), tmp_path / "images", progress=False)
    scenes = train(config_from_dict(_scenes_config()), tmp_path / "scenes", progress=False)
    a, b = (load_checkpoint(p / "checkpoint.pt")["model"] for p in (images, scenes))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_before_data_scenes_resumes(tmp_path):
    raw = _scenes_config()
    raw["data"]["scenes"] = None
    run = train(config_from_dict(raw), tmp_path / "old", progress=False)
    state = load_checkpoint(run / "checkpoint.pt")
    del state["config"]["data"]["scenes"]
    save_checkpoint(run / "checkpoint.pt", state)
    train(config_from_dict({**raw, "epochs": 2}), run, resume=True, progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    with pytest.raises(ValueError, match="differs from the run's in data.scenes.n_scenes, "
                                         "data.scenes.variant"):
        train(config_from_dict({**_scenes_config(), "epochs": 3}), run, resume=True,
              progress=False)


def test_evaluation_builds_its_pools_from_the_images_not_the_scenes(tmp_path, monkeypatch):
    import alignuniform.data
    from alignuniform.evaluate import checkpoint_eval, dense_checkpoint_eval

    raw = _scenes_config()
    run = train(config_from_dict(raw), tmp_path / "run", progress=False)
    seen: list[dict] = []
    inner_splits = alignuniform.data.build_run_splits  # imported when evaluation runs

    def spy_splits(data_cfg, *args, **kwargs):
        seen.append(copy.deepcopy(data_cfg))
        return inner_splits(data_cfg, *args, **kwargs)

    monkeypatch.setattr(alignuniform.data, "build_run_splits", spy_splits)
    results = checkpoint_eval.evaluate_checkpoint(run / "checkpoint.pt", layers=["embedding"],
                                                  n_train=12, n_test=8, progress=False)
    assert seen and results["layers"]["embedding"]["linear_acc"] is not None
    train_set, _, _ = inner_splits(seen[0])
    assert train_set[0][0].shape == (3, 32, 32) and not isinstance(train_set, SceneDataset)

    pools: list[tuple] = []
    inner_scenes = dense_checkpoint_eval.build_scenes

    def spy_scenes(root, split, **kwargs):
        pools.append((split, kwargs))
        return inner_scenes(root, split, **kwargs)

    monkeypatch.setattr(dense_checkpoint_eval, "build_scenes", spy_scenes)
    dense_checkpoint_eval.evaluate_dense_checkpoint(
        run / "checkpoint.pt", variants=("multi",), which=("backbone",), n_train=4, n_test=4,
        canvas=32, probe_epochs=1, n_locations=None, n_pair_items=4)
    # the scene pools are the data set's train and val images, with the run's own options
    assert [split for split, _ in pools] == ["train", "val"]
    for _, kwargs in pools:
        assert kwargs["dataset"] == "synthetic" and kwargs["n"] == 24
        assert "scenes" not in kwargs and kwargs["n_scenes"] == 4


@pytest.mark.parametrize("scenes, message", [
    ({"variant": "triple"}, r"data.scenes.variant must be one of multi, single \(or null"),
    ({"n_scenes": 0}, "data.scenes.n_scenes must be >= 1, got 0"),
    ({"canvas": 8}, "data.scenes.canvas must be >= 16 px"),
    ({"size": 8}, "unknown config key.*data.scenes.size"),
])
def test_bad_scenes_are_refused_naming_the_key(tmp_path, scenes, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_scenes_config(**scenes)))
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_scenes_need_an_in_memory_image_pool(tmp_path):
    raw = _scenes_config()
    raw["data"] = {"name": "mnist1d", "recipe": "mnist1d", "batch_size": 4, "num_workers": 0,
                   "kwargs": {"n_train": 40, "n_test": 10}, "scenes": SCENES}
    raw["dense"], raw["model"] = {}, {"name": "conv1d", "feat_dim": 8}
    with pytest.raises(ValueError, match="data.scenes: scenes need an in-memory image data "
                                         "set.*data.scenes.variant: null"):
        train(config_from_dict(raw), tmp_path / "run", progress=False)


def test_global_only_training_on_scenes_also_works_with_batched_views(tmp_path):
    raw = _scenes_config()
    raw["dense"] = {}
    raw["model"] = {"name": "small_cnn", "feat_dim": 8, "kwargs": {"width": 4}}
    raw["data"]["batched_augment"] = True
    out = train(config_from_dict(raw), tmp_path / "run", progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 4
