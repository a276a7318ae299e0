"""``alignuniform demo``: train and compare encoders on a bundled data set, then write the report.

The comparison of Wang & Isola (2020) at laptop scale: a randomly initialised encoder, one
trained with ``L_contrastive`` and one with ``L_align + L_uniform``, all evaluated the same way
(linear probe and 5-NN accuracy on the test split, alignment on held-out positive pairs,
uniformity of the test embeddings). Training is ``alignuniform.train.train``, evaluation
``alignuniform.evaluate.evaluate_encoder``, the page ``alignuniform.report.build``; this
module only chooses the settings and wires them together.
"""

from __future__ import annotations

import dataclasses
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

# Where the offline CIFAR-10 copy lives relative to the repository root (see the data README).
SHARED_CIFAR10 = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10"


@dataclass(frozen=True)
class DemoData:
    """How the demo trains on one data set.

    Attributes:
        name: Data set name (``alignuniform.data.DATASETS``).
        recipe: Two-view augmentation (``alignuniform.data.RECIPES``).
        eval_transform: Deterministic transform before the encoder at evaluation, or None.
        model: Encoder name (``alignuniform.models.MODELS``).
        model_kwargs: Its constructor options (besides ``feat_dim``).
        batch_size, epochs, lr, milestones: Training schedule (SGD, momentum 0.9).
        batched_augment: Augment whole batches (image recipes only).
        dataset_kwargs: Options of ``build_dataset`` (sizes, seeds).
        class_names: Label names for the figures.
    """

    name: str
    recipe: str
    eval_transform: str | None
    model: str
    model_kwargs: dict = field(default_factory=dict)
    batch_size: int = 256
    epochs: int = 10
    lr: float = 0.1
    milestones: tuple[int, ...] = ()
    batched_augment: bool = False
    dataset_kwargs: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = ()


MNIST1D = DemoData(
    name="mnist1d", recipe="mnist1d", eval_transform=None, model="conv1d",
    model_kwargs={"pool": "max", "width": 16}, batch_size=256, epochs=12, lr=0.1,
    milestones=(9,),
    class_names=tuple(str(i) for i in range(10)),
)
CIFAR10 = DemoData(
    name="cifar10", recipe="cifar10", eval_transform="cifar10_eval", model="small_cnn",
    batch_size=256, epochs=5, lr=0.1, milestones=(4,), batched_augment=True,
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
)
DATASETS = {"mnist1d": MNIST1D, "cifar10": CIFAR10}

# The compared objectives, as ``LossConfig`` fields; None is the untrained baseline.
# tau = 0.5 was the best of {0.1, 0.2, 0.5} on held-out 5-NN accuracy in a short MNIST-1D
# sweep; the align/uniform settings are the paper's defaults (alpha = 2, t = 2, weights 1).
TAU = 0.5
ENCODERS: dict[str, dict | None] = {
    "random init": None,
    "L_contrastive": {"w_contrastive": 1.0, "tau": TAU, "w_align": 0.0, "w_uniform": 0.0},
    "L_align + L_uniform": {"w_contrastive": 0.0, "w_align": 1.0, "alpha": 2.0,
                            "w_uniform": 1.0, "t": 2.0},
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_demo_sets(spec: DemoData, root: str | None, seed: int, n_train: int | None,
                   n_test: int | None) -> tuple[Dataset, Dataset, dict, str]:
    """The train and held-out sets of the demo, the data options used to build them, and
    the held-out split's name: "test" where the data have one (for CIFAR-10, a
    ``cifar10-test-jpeg.zip`` beside the training zip), else the "val" hold-out."""
    from alignuniform.data import build_run_splits
    from alignuniform.evaluate.features import random_subset

    kwargs = dict(spec.dataset_kwargs)
    if spec.name == "mnist1d":
        kwargs.update(n_train=n_train or 4000, n_test=n_test or 1000, seed=seed)
        train_set, test_set, test_split = build_run_splits({"name": spec.name, "kwargs": kwargs})
        return train_set, test_set, kwargs, test_split
    if root is None:
        root = str(SHARED_CIFAR10 / "cifar10-train-jpeg.zip")
    if not Path(root).exists():
        raise FileNotFoundError(
            f"no CIFAR-10 at {root}; pass --root (a torchvision cifar-10-batches-py folder's "
            "parent, or the offline cifar10-train-jpeg.zip)")
    train_set, test_set, test_split = build_run_splits(
        {"name": spec.name, "root": root, "kwargs": kwargs})
    n_train = min(n_train or 5000, len(train_set))  # type: ignore[arg-type]
    # the same seeded subset as train()'s data.subset, so training and probe see one set
    return (random_subset(train_set, n_train, seed),
            random_subset(test_set, n_test or 1000, seed + 1),
            {**kwargs, "root": root, "subset": n_train}, test_split)


def train_config(spec: DemoData, loss: dict, *, seed: int, feat_dim: int, epochs: int,
                 data_kwargs: dict, root: str | None):
    """The ``TrainConfig`` of one trained demo encoder."""
    from alignuniform.train import (
        DataConfig,
        LossConfig,
        ModelConfig,
        OptimConfig,
        TrainConfig,
    )

    kwargs = {k: v for k, v in data_kwargs.items() if k not in ("root", "subset")}
    return TrainConfig(
        data=DataConfig(name=spec.name, root=root, recipe=spec.recipe,
                        batch_size=spec.batch_size, num_workers=0,
                        batched_augment=spec.batched_augment,
                        subset=data_kwargs.get("subset"), kwargs=kwargs),
        model=ModelConfig(name=spec.model, feat_dim=feat_dim, kwargs=dict(spec.model_kwargs)),
        loss=LossConfig(**loss),
        optim=OptimConfig(lr=spec.lr, momentum=0.9, weight_decay=5e-4,
                          milestones=list(spec.milestones), gamma=0.1),
        seed=seed, epochs=epochs, device="auto",
    )


def run_demo(
    out_dir: str | Path = "runs/demo",
    *,
    data: str = "mnist1d",
    root: str | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    epochs: int | None = None,
    feat_dim: int = 2,
    progress: bool = True,
) -> dict:
    """Train, evaluate and report every encoder of ``ENCODERS`` on ``data``.

    Each trained encoder's run (config, checkpoint, per-step and per-epoch logs) goes to
    ``out_dir/runs/<name>``; an existing run with the same config is reused rather than
    retrained. The page, figures and ``results.json`` go to ``out_dir``.

    Args:
        out_dir: Output folder.
        data: ``"mnist1d"`` (generated locally) or ``"cifar10"`` (needs the data on disk).
        root: Where CIFAR-10 lives (default: the offline copy under ``../shared/data``).
        seed: Seeds data generation, initialisation, augmentation and evaluation.
        n_train, n_test: Sizes of the training and test sets (MNIST-1D: 4,000 and 1,000;
            CIFAR-10: seeded subsets of 5,000 training and 1,000 held-out images, from the
            test zip beside the training zip if there is one, else from the "val" hold-out).
        epochs: Training epochs (default: the data set's setting).
        feat_dim: Embedding dimension; 2 (the default) puts the embeddings on S^1 and adds
            the paper's S^1 figure.
        progress: Show progress bars.

    Returns:
        The ``results.json`` content.
    """
    from alignuniform.checkpoint import load_encoder
    from alignuniform.data import build_recipe
    from alignuniform.devices import default_device
    from alignuniform.evaluate import evaluate_encoder, make_monitor
    from alignuniform.evaluate.results import save_results
    from alignuniform.io import read_jsonl
    from alignuniform.metrics import uniformity_bound
    from alignuniform.models import build_model
    from alignuniform.report.build import build_report
    from alignuniform.report.run import s1_inputs
    from alignuniform.train import train

    if data not in DATASETS:
        raise ValueError(f"unknown demo data {data!r}; choose one of {sorted(DATASETS)}")
    if isinstance(feat_dim, bool) or not isinstance(feat_dim, int) or feat_dim < 2:
        raise ValueError(f"feat_dim must be an int >= 2, got {feat_dim!r}")
    spec = DATASETS[data]
    epochs = spec.epochs if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    train_set, test_set, data_kwargs, test_split = load_demo_sets(spec, root, seed, n_train,
                                                                  n_test)
    root = data_kwargs.get("root")
    recipe = build_recipe(spec.recipe)
    transform = build_recipe(spec.eval_transform) if spec.eval_transform else None
    device = default_device()
    # train() stores the monitor's numbers as heldout_<key> in each run's epochs.jsonl
    monitor = make_monitor(train_set, test_set, recipe, transform=transform, n_train=None,
                           n_test=None, k=min(200, len(train_set)), seed=seed)  # type: ignore[arg-type]

    encoders, records = [], {}
    for name, loss in ENCODERS.items():
        tic = time.perf_counter()
        epochs_rows: list[dict] = []
        config = None
        if loss is None:
            # the same seeded draw as a trained run's initial weights (train seeds, then builds)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = build_model(spec.model, feat_dim=feat_dim, **spec.model_kwargs)
            run_dir = None
        else:
            config = train_config(spec, loss, seed=seed, feat_dim=feat_dim, epochs=epochs,
                                  data_kwargs=data_kwargs, root=root)
            run_dir = out_dir / "runs" / _slug(name)
            if progress:
                print(f"== training {name} for {epochs} epochs -> {run_dir}", flush=True)
            train(config, run_dir, resume=True, monitor=monitor, progress=progress)
            model, _ = load_encoder(run_dir / "checkpoint.pt", device=device)
            epochs_rows = read_jsonl(run_dir / "epochs.jsonl")
        # a reused run took no time now: its own epoch clocks say what training cost
        train_s = (sum(r["wall_s"] for r in epochs_rows) if epochs_rows
                   else time.perf_counter() - tic)
        if progress:
            print(f"== evaluating {name}", flush=True)
        model = model.to(device).eval()
        ev = evaluate_encoder(model, train_set, test_set, transform=transform, recipe=recipe,
                              seed=seed, progress=progress)
        enc = {"name": name, "eval": ev, "epochs": epochs_rows, "train_s": train_s}
        if feat_dim == 2:
            enc.update(s1_inputs(model, test_set, recipe, transform=transform, seed=seed))
        encoders.append(enc)
        records[name] = {
            "loss": loss, "run_dir": None if run_dir is None else str(run_dir),
            "train_seconds": train_s,
            "config": None if config is None else dataclasses.asdict(config),
            "evaluation": ev,
        }

    findings, checks = _findings(encoders)
    results = {
        "data": {"name": spec.name, "test_split": test_split, "n_train": len(train_set),  # type: ignore[arg-type]
                 "n_test": len(test_set), **data_kwargs},  # type: ignore[arg-type]
        "seed": seed, "feat_dim": feat_dim, "epochs": epochs,
        "uniformity_bound": uniformity_bound(feat_dim, t=2.0),
        "encoders": records, "checks": checks,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(),
                        "device": str(device)},
    }
    settings = _settings(spec, epochs, feat_dim, len(train_set), len(test_set), test_split,  # type: ignore[arg-type]
                         seed)
    results["wall_seconds"] = time.perf_counter() - start
    intro = (f"Encoders compared on {spec.name} ({len(train_set)} training and "  # type: ignore[arg-type]
             f"{len(test_set)} {test_split} items, {feat_dim}-d output on the unit "  # type: ignore[arg-type]
             f"hypersphere): a randomly initialised encoder, one trained with L_contrastive "
             f"and one with L_align + L_uniform (Wang & Isola, ICML 2020). Training and "
             f"evaluating took {results['wall_seconds']:.0f} s.")
    cmd = f"alignuniform demo --data {data} --seed {seed} --out {out_dir}"
    build_report(out_dir, encoders, title=f"alignuniform demo: {spec.name}", intro=intro,
                 findings=findings, settings=settings, reproduce=[cmd],
                 class_names=list(spec.class_names) or None)
    results["wall_seconds"] = time.perf_counter() - start
    save_results(results, out_dir / "results.json")
    return results


def _findings(encoders: list[dict]) -> tuple[list[str], dict]:
    """Bullet points and booleans: do trained encoders beat random init, are they more uniform."""
    base = next(e for e in encoders if e["name"] == "random init")
    b_emb = base["eval"]["layers"]["embedding"]
    lines, checks = [], {}
    for enc in encoders:
        if enc is base:
            continue
        emb = enc["eval"]["layers"]["embedding"]
        pen = enc["eval"]["layers"].get("penultimate", {})
        b_pen = base["eval"]["layers"].get("penultimate", {})
        c = {
            "linear_beats_random": emb["linear_acc"] > b_emb["linear_acc"],
            "knn5_beats_random": emb["knn5_acc"] > b_emb["knn5_acc"],
            "penultimate_linear_beats_random": (pen.get("linear_acc", 0.0)
                                                > b_pen.get("linear_acc", 1.0)),
            "more_uniform_than_random": emb["uniformity"] < b_emb["uniformity"],
        }
        checks[enc["name"]] = c
        lines.append(
            f"{enc['name']}: linear accuracy {emb['linear_acc']:.1%} vs {b_emb['linear_acc']:.1%} "
            f"for random init ({'better' if c['linear_beats_random'] else 'NOT better'}); "
            f"5-NN {emb['knn5_acc']:.1%} vs {b_emb['knn5_acc']:.1%}; penultimate-layer linear "
            f"accuracy {pen.get('linear_acc', float('nan')):.1%} vs "
            f"{b_pen.get('linear_acc', float('nan')):.1%}; uniformity "
            f"{emb['uniformity']:.3f} vs {b_emb['uniformity']:.3f} "
            f"({'more' if c['more_uniform_than_random'] else 'NOT more'} uniform); "
            f"alignment {emb['alignment']:.3f} vs {b_emb['alignment']:.3f}."
        )
    trained = [e["eval"]["layers"]["embedding"]["alignment"] for e in encoders if e is not base]
    if trained and b_emb["alignment"] < min(trained):
        lines.append(
            f"Random init has the lowest alignment ({b_emb['alignment']:.3f}) only because it "
            f"maps nearly everything to one point: its uniformity {b_emb['uniformity']:.3f} is "
            f"far above the bound {b_emb['uniformity_bound']:.3f}. Alignment means something "
            "only together with uniformity.")
    return lines, checks


def _settings(spec: DemoData, epochs: int, feat_dim: int, n_train: int, n_test: int,
              test_split: str, seed: int) -> list[str]:
    from alignuniform.data import mnist1d

    lines = [
        f"Data: {spec.name}, {n_train} training / {n_test} {test_split} items, seed {seed}.",
        f"Encoder: {spec.model} {spec.model_kwargs or ''}, {feat_dim}-d L2-normalised output.",
        f"Training: {epochs} epochs, batch {spec.batch_size}, SGD lr {spec.lr} momentum 0.9 "
        f"weight decay 5e-4, lr x0.1 after epochs {list(spec.milestones)}; both views of a "
        "batch in one forward pass.",
        f"L_contrastive: tau = {TAU}, symmetric in-batch negatives. Tuned on MNIST-1D with "
        "2-d output (9 epochs, 5-NN test accuracy of the embedding): tau = 0.1: 31.5%, "
        "0.2: 31.6%, 0.5: 37.5%; smaller tau left the 2-d embeddings far from uniform.",
        "L_align + L_uniform: weights 1 and 1, alpha = 2, t = 2 (the paper's defaults); "
        "uniformity averaged over both views.",
        "Random init: the same architecture with the trained runs' initial weights (same seed).",
        f"Ran on {'CUDA' if torch.cuda.is_available() else 'CPU'} with "
        f"{torch.get_num_threads()} torch thread(s): on the CPU the same seed and thread count "
        "give the same numbers; another thread count changes the order of floating-point "
        "sums and so the trained weights (OMP_NUM_THREADS=1 makes runs comparable across "
        "machines).",
        "Evaluation: linear probe (L-BFGS on frozen features) and 5-NN on the test split; "
        "alignment (alpha = 2) on two seeded views of every test item; uniformity (t = 2) "
        "exactly over all test embeddings.",
    ]
    if spec.name == "mnist1d":
        lines.insert(1, f"Positive pairs: two views by `mnist1d_view` {mnist1d.VIEW_DEFAULTS}: "
                        "crop-and-stretch in time, circular shift, linear trend (shear), "
                        "amplitude scale, Gaussian noise.")
    return lines
