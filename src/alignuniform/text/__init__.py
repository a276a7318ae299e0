"""Sentence embeddings on the hypersphere: STS-B geometry and SimCSE-style training.

Needs the optional extra ``pip install 'alignuniform[text]'`` (sentence-transformers);
sentence-transformers itself is imported only when a model is loaded.
"""

from alignuniform.text.dropout import dropout_alignment, dropout_modules, dropout_rate
from alignuniform.text.encoders import (
    REPRESENTATIONS,
    Whitening,
    check_sentences,
    encode_representations,
    fit_whitening,
    forward_representations,
    load_sentence_model,
    packaged_model_dir,
    resolve_model,
)
from alignuniform.text.simcse import SimCSEConfig, save_sentence_model, train_simcse
from alignuniform.text.sts_eval import evaluate_sts, sts_geometry, sts_spearman
from alignuniform.text.stsb import StsSplit, read_sentences, read_stsb, stsb_file

__all__ = [
    "REPRESENTATIONS",
    "SimCSEConfig",
    "StsSplit",
    "Whitening",
    "check_sentences",
    "dropout_alignment",
    "dropout_modules",
    "dropout_rate",
    "encode_representations",
    "evaluate_sts",
    "fit_whitening",
    "forward_representations",
    "load_sentence_model",
    "packaged_model_dir",
    "read_sentences",
    "read_stsb",
    "resolve_model",
    "save_sentence_model",
    "sts_geometry",
    "sts_spearman",
    "stsb_file",
    "train_simcse",
]
