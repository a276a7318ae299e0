"""Train an encoder on the hypersphere: typed configs, the loop, checkpoints and resume, DDP.

One function, ``train(config, out_dir)``, runs any point of the paper's loss space
(contrastive / align / uniform / NT-Xent, with weights) on an image data set, in one process
or under ``torchrun`` with DistributedDataParallel, with in-batch negatives or MoCo's
momentum encoder and queue (the ``queue`` section). ``config`` holds the schema, the
criteria it builds and YAML load/save; ``validation`` the checks of values no run can use;
``engine`` the loop, checkpoints and resume; ``steps`` and ``dense_step`` what one step
computes (plain, queue, dense, dense + queue); ``run_dir`` the lock, log trimming and the
state to resume; ``rng`` the seeds and generator state; ``queue`` the momentum key encoder
and queue.

Examples:
    A shipped recipe by name, with overrides (training itself needs the CIFAR-10 data and
    minutes, so that line is not run as a test):

    >>> from alignuniform.train import load_config, train
    >>> cfg = load_config("cifar10_cpu_align_uniform", ["epochs=2"])
    >>> cfg.epochs, cfg.loss.w_align, cfg.loss.w_uniform
    (2, 1.0, 1.0)
    >>> run_dir = train(cfg, "runs/au")  # doctest: +SKIP
"""

from alignuniform.train.config import (
    AMP_DTYPES,
    DataConfig,
    DenseConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    QueueConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    save_config,
)
from alignuniform.train.engine import build_train_set, train
from alignuniform.train.queue import MomentumQueue, QueueLoss

__all__ = [
    "AMP_DTYPES",
    "DataConfig",
    "DenseConfig",
    "LossConfig",
    "ModelConfig",
    "MomentumQueue",
    "OptimConfig",
    "QueueConfig",
    "QueueLoss",
    "TrainConfig",
    "build_train_set",
    "config_from_dict",
    "load_config",
    "save_config",
    "train",
]
