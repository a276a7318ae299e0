"""Judge an encoder the way Wang & Isola (2020) do: linear probe, k-NN, held-out alignment and
exact uniformity, from the output embedding and from the penultimate layer.

Tensor-level pieces work on precomputed features (``linear_probe``, ``knn_accuracy``,
``mean_classifier_accuracy``); the model-level pieces compose them with a frozen encoder
(``extract_features``, ``heldout_alignment``, ``linear_probe_paper``, ``evaluate_encoder``,
``evaluate_checkpoint``, ``make_monitor``). Nothing here prints except progress bars; the CLI
formats the results.

Modules: ``features`` (extraction, held-out alignment), ``probe``, ``knn``,
``mean_classifier``, ``checkpoint_eval`` (every number of an encoder or a checkpoint),
``monitor`` (the training monitor), ``measurement`` (``alignuniform measure``),
``spectral_numbers`` (RankMe, ranks, alpha-ReQ, W2, LiDAR as result-file numbers),
``dense_probe`` and ``dense_checkpoint_eval`` (mIoU and dense metrics on held-out scenes),
``results`` (eval.json).

Examples:
    Needs a trained checkpoint and its data, so the example is not run as a test:

    >>> from alignuniform.evaluate import evaluate_checkpoint, save_results
    >>> results = evaluate_checkpoint("runs/cpu_align_uniform/checkpoint.pt",
    ...                               n_train=20000)  # doctest: +SKIP
    >>> results["layers"]["penultimate"]["linear_acc"]  # doctest: +SKIP
    0.508
"""

from alignuniform.evaluate.checkpoint_eval import evaluate_checkpoint, evaluate_encoder
from alignuniform.evaluate.features import (
    LAYERS,
    Features,
    extract_features,
    heldout_alignment,
    heldout_alignments,
    heldout_alignments_and_lidar,
)
from alignuniform.evaluate.knn import knn_accuracy, knn_predict
from alignuniform.evaluate.mean_classifier import MeanClassifier, mean_classifier_accuracy
from alignuniform.evaluate.measurement import Measurement, measure, measure_files
from alignuniform.evaluate.monitor import make_monitor
from alignuniform.evaluate.probe import (
    DEFAULT_WEIGHT_DECAYS,
    linear_probe,
    linear_probe_paper,
    probe_augmentation,
)
from alignuniform.evaluate.results import load_results, save_results

__all__ = [
    "DEFAULT_WEIGHT_DECAYS",
    "LAYERS",
    "MeanClassifier",
    "Measurement",
    "Features",
    "evaluate_checkpoint",
    "evaluate_encoder",
    "extract_features",
    "heldout_alignment",
    "heldout_alignments",
    "heldout_alignments_and_lidar",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "linear_probe_paper",
    "load_results",
    "make_monitor",
    "mean_classifier_accuracy",
    "measure",
    "measure_files",
    "probe_augmentation",
    "save_results",
]
