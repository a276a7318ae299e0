"""Sentence embeddings on the hypersphere: STS-B geometry and SimCSE-style training.

Needs the optional extra ``pip install 'alignuniform[text]'`` (sentence-transformers);
sentence-transformers itself is imported only when a model is loaded, and torch only when
one of the names below is first used (the command line reads ``text.settings`` without it).
"""

from alignuniform._registry import lazy_exports

_MODULES = {
    "dropout": ("dropout_alignment", "dropout_modules", "dropout_rate"),
    "encoders": ("Whitening", "check_sentences", "encode_representations", "fit_whitening",
                 "forward_representations", "load_sentence_model", "packaged_model_dir",
                 "resolve_model"),
    "runs": ("TextDropoutRun", "TextEvalRun", "TextTrainRun", "run_text_dropout",
             "run_text_eval", "run_text_train"),
    "settings": ("REPRESENTATIONS", "SimCSEConfig"),
    "simcse": ("save_sentence_model", "train_simcse"),
    "sts_eval": ("evaluate_sts", "sts_geometry", "sts_spearman"),
    "stsb": ("StsSplit", "read_sentences", "read_stsb", "stsb_file"),
}
__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}:{name}"
                                      for module, names in _MODULES.items() for name in names})
__all__ = sorted(name for names in _MODULES.values() for name in names)
