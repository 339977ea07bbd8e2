"""COCO caption metrics with pycocoevalcap, computed as SwinBERT's ``evaluate_on_coco_caption`` (through
``COCOEvalCap``) does: references and predictions PTB-tokenised (lowercase, punctuation removed), then
BLEU-1..4, METEOR, ROUGE-L and CIDEr over the predicted keys. Metric names are the original's.

Java runs the PTB tokenizer and METEOR. Without ``java`` on the PATH a warning names those two, METEOR is
left out and the other metrics use a fallback tokenisation (:func:`simple_tokenize`: lowercase, every run
of characters other than letters, digits and apostrophes is a separator); it does not split
contractions as PTB does ("don't" stays one token), so scores can differ slightly from the Java path.
SPICE is optional (``spice=True``): it needs Java and the Stanford CoreNLP models, which pycocoevalcap
downloads on first use; if it cannot run, a warning says why and SPICE is left out.
"""
import json
import logging
import os
import re
import shutil

log = logging.getLogger("lavender")

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
_SEPARATORS = re.compile(r"[^a-z0-9']+")


def java_available():
    return shutil.which("java") is not None


def simple_tokenize(text):
    """Fallback tokenisation without Java: lowercase, punctuation removed, single spaces."""
    return " ".join(t for t in _SEPARATORS.split(str(text).lower()) if t.strip("'"))


def load_coco_references(path):
    """``{image_id: [caption, ...]}`` from a COCO-format caption json (``images`` + ``annotations``)."""
    from ..errors import DataError
    try:
        with open(path) as f:
            d = json.load(f)
        refs = {img["id"]: [] for img in d.get("images", [])}
        for ann in d["annotations"]:
            refs.setdefault(ann["image_id"], []).append(ann["caption"])
    except FileNotFoundError:
        raise DataError(f"missing COCO caption file {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a COCO caption json with annotations of image_id/caption "
                        f"({type(e).__name__}: {e})") from None
    return refs


def _check(references, predictions):
    missing = [k for k in predictions if not references.get(k)]
    if missing:
        raise ValueError(f"{len(missing)} predicted key(s) have no reference captions, e.g. {missing[:5]}")
    bad = [k for k, v in predictions.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"predictions must be one string per key; not for {bad[:5]}")


def caption_metrics(references, predictions, meteor=True, spice=False):
    """Metrics of ``predictions`` {key: caption} against ``references`` {key: [caption, ...]}.

    Every predicted key needs references; references without a prediction are not scored (as SwinBERT,
    which evaluates the predicted image ids). Returns ``{"Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}``
    (+ ``"SPICE"``) as floats; ``meteor=False`` skips METEOR (its Java start takes ~10 s).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    _check(references, predictions)
    keys = list(predictions)
    if not keys:
        raise ValueError("no predictions to score")
    java = java_available()
    if java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
        tok = PTBTokenizer()
        gts = tok.tokenize({k: [{"caption": c} for c in references[k]] for k in keys})
        res = tok.tokenize({k: [{"caption": predictions[k]}] for k in keys})
    else:
        log.warning("caption metrics: `java` not found; the PTB tokenizer and METEOR need Java "
                    "(apt-get install default-jre-headless). METEOR is left out; BLEU, ROUGE-L and CIDEr use a "
                    "fallback tokenisation (lowercase, punctuation removed)")
        gts = {k: [simple_tokenize(c) for c in references[k]] for k in keys}
        res = {k: [simple_tokenize(predictions[k])] for k in keys}
    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
    if java and meteor:
        from pycocoevalcap.meteor.meteor import Meteor
        scorer = Meteor()
        try:
            out["METEOR"] = float(scorer.compute_score(gts, res)[0])
        finally:
            del scorer  # stops its Java process
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if spice:
        out.update(_spice(gts, res, java))
    return out


def _spice(gts, res, java):
    if not java:
        log.warning("caption metrics: SPICE needs Java; left out")
        return {}
    from pycocoevalcap.spice.spice import Spice
    try:
        return {"SPICE": float(Spice().compute_score(gts, res)[0])}
    except Exception as e:  # noqa: BLE001 - any failure of the external tool only drops this optional metric
        log.warning("caption metrics: SPICE could not run (%s: %s); it needs Java and the Stanford CoreNLP "
                    "3.6.0 models, which pycocoevalcap downloads into %s on first use; left out",
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "", os.path.join("pycocoevalcap",
                                                                                            "spice", "lib"))
        return {}
