"""Caption metrics: our wrapper against pycocoevalcap's own COCOEvalCap (with pycocotools COCO + loadRes, as
SwinBERT evaluated), the no-Java fallback and optional SPICE."""
import json
import logging

import pytest

import pycocoevalcap.eval as coco_eval
import pycocoevalcap.meteor.meteor as meteor_mod
from lavender.metrics import caption as cap
from lavender.metrics.caption import METRICS, caption_metrics, load_coco_references, simple_tokenize

REFS = {
    "video7010": ["A man is driving a red car.", "a person drives a car down the road", "Someone's driving."],
    "video7011": ["Two dogs play in the snow!", "dogs are playing outside in the snow"],
    "video7012": ["a woman is cooking pasta in a kitchen", "A lady cooks food."],
    "video7013": ["a cartoon character is talking", "an animated man speaks to a crowd, loudly"],
    "video7014": ["people are dancing on a stage", "a group dances"],
}
PREDS = {"video7010": "a man is driving a car", "video7011": "Dogs are playing in the snow.",
         "video7012": "a woman is cooking", "video7013": "a cartoon is shown", "video7014": ""}
_REAL_METEOR = meteor_mod.Meteor


class OnceMeteor:
    """Real METEOR (~10 s per Java start) computed once per distinct input; the same input again reuses it."""
    cache = {}

    def compute_score(self, gts, res):
        key = json.dumps([gts, res], sort_keys=True)
        if key not in self.cache:
            scorer = _REAL_METEOR()
            self.cache[key] = scorer.compute_score(gts, res)
            del scorer
        return self.cache[key]

    def method(self):
        return "METEOR"


class NoSpice:
    def compute_score(self, gts, res):
        raise RuntimeError("Downloading stanford-corenlp-3.6.0 for SPICE: Name or service not known")

    def method(self):
        return "SPICE"


def write_coco(tmp_path):
    gt = {"info": {}, "licenses": [], "type": "captions",
          "images": [{"id": k, "file_name": k} for k in REFS],
          "annotations": [{"image_id": k, "caption": c, "id": i}
                          for i, (k, c) in enumerate((k, c) for k in REFS for c in REFS[k])]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": k, "caption": c} for k, c in PREDS.items()]))
    return str(tmp_path / "gt.json"), str(tmp_path / "res.json")


@pytest.mark.slow  # one real METEOR run (a Java start of ~10 s, longer on a busy machine)
@pytest.mark.skipif(not cap.java_available(), reason="needs java (PTB tokenizer, METEOR)")
def test_equals_cocoevalcap(tmp_path, monkeypatch):
    from pycocotools.coco import COCO
    monkeypatch.setattr(meteor_mod, "Meteor", OnceMeteor)
    monkeypatch.setattr(coco_eval, "Meteor", OnceMeteor)
    monkeypatch.setattr(coco_eval, "Spice", NoSpice)  # offline: SPICE cannot download its models
    OnceMeteor.cache.clear()
    ours = caption_metrics(REFS, PREDS)
    assert list(ours) == list(METRICS)

    gt_path, res_path = write_coco(tmp_path)
    coco = COCO(gt_path)
    res = coco.loadRes(res_path)
    ev = coco_eval.COCOEvalCap(coco, res)
    ev.params["image_id"] = res.getImgIds()
    with pytest.raises(RuntimeError, match="SPICE"):  # SPICE is its last scorer: all others are done
        ev.evaluate()
    assert len(OnceMeteor.cache) == 1  # METEOR saw exactly our tokenised input: one Java run in this suite
    for name in METRICS:
        assert ours[name] == pytest.approx(ev.eval[name], abs=1e-12), name
    assert 0 < ours["METEOR"] < 1 and ours["CIDEr"] > 0.3
    assert load_coco_references(gt_path) == REFS


def test_without_java(monkeypatch, caplog):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    monkeypatch.setattr(cap, "java_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="lavender"):
        out = caption_metrics(REFS, PREDS, spice=True)
    assert "METEOR" not in out and "SPICE" not in out
    assert "PTB tokenizer and METEOR need Java" in caplog.text and "SPICE needs Java" in caplog.text
    gts = {k: [simple_tokenize(c) for c in v] for k, v in REFS.items()}
    res = {k: [simple_tokenize(v)] for k, v in PREDS.items()}
    assert out["Bleu_4"] == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0][3])
    assert out["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0])
    assert simple_tokenize("Two dogs play, in the SNOW!") == "two dogs play in the snow"


@pytest.mark.skipif(not cap.java_available(), reason="needs java")
def test_spice_failure_is_reported(monkeypatch, caplog):
    import pycocoevalcap.spice.spice as spice_mod
    monkeypatch.setattr(spice_mod, "Spice", NoSpice)
    with caplog.at_level(logging.WARNING, logger="lavender"):
        out = caption_metrics(REFS, PREDS, meteor=False, spice=True)
    assert "SPICE" not in out and "METEOR" not in out and "CIDEr" in out
    assert "SPICE could not run" in caplog.text and "Stanford CoreNLP" in caplog.text


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no reference captions"):
        caption_metrics(REFS, {"video9999": "a cat"}, meteor=False)
    from lavender.errors import DataError
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="bad.json"):
        load_coco_references(tmp_path / "bad.json")
