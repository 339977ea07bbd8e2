"""The demo dataset generator at a tiny size: every file, in the documented formats."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lavender.data.tsv import TSVFile
from tiny import read_parts
from lavender.data.video_store import VideoStore
from lavender.data.annotations import load_annotation_file, load_annotations

TOOLS = Path(__file__).resolve().parents[2] / "_tools"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("_tool_make_demo_data", TOOLS / "make_demo_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp("demo")
    base = mod.make_demo(out, n_videos=24, sample=6, workers=2, seed=3, size_part=2, verbose=False)
    return out, base


def test_files_exist(demo):
    out, base = demo
    names = ["img_demo.tsv", "img_demo.lineidx", "img_demo.id2lineidx.pkl", "txt_demo-qa.json",
             "txt_demo-fib.json", "txt_demo-qamc.json", "txt_demo-mc.json", "txt_demo-retrieval.json",
             "txt_demo.json", "demo_train_0.tsv", "demo_train_1.tsv", "demo_val.tsv", "demo_val.lineidx",
             "demoimg_train_0.tsv", "demoimg_train_1.tsv", "demoimg_val.tsv", "txt_demoimg.json", "README.txt"]
    names += [f"demo_cap/{s}.{x}" for s in ("train", "val", "test")
              for x in ("yaml", "img.tsv", "caption.tsv", "caption_coco_format.json", "caption.linelist.tsv")]
    assert [n for n in names if not (out / n).exists()] == []
    assert len(list((out / "_demo").glob("*.mp4"))) == 24
    assert "qamc (majority answer index)" in base and "Baselines" in (out / "README.txt").read_text()


def test_store_and_annotations(demo):
    out, _ = demo
    store = VideoStore(out, "demo", size_frame=4, size_img=32, img_transform=["img_rand_crop"])
    assert len(store) == 24 and store.clip(store.ids()[0], train=True).shape == (4, 3, 32, 32)
    assert all(len(r) == 7 for r in TSVFile(out / "img_demo.tsv"))  # vid + 6 frames, tools layout
    for task in ("qa", "fib", "qamc", "mc", "retrieval"):
        seen = set()
        for split in ("train", "val", "test"):
            items = load_annotations(out / f"txt_demo-{task}.json", split, store=store)
            assert items, (task, split)
            vids = {it["video"] for it in items}
            assert not vids & seen  # splits by video
            seen |= vids
    qa = load_annotations(out / "txt_demo-qa.json", "train")
    assert {"video", "question", "answer_text"} <= set(qa[0]) and " " not in qa[0]["answer_text"]
    fib = load_annotation_file(out / "txt_demo-fib.json")
    inv = {v: k for k, v in fib["ans2label"].items()}
    assert all("[MASK]" in it["question"] and it["answer"] in inv for it in fib["train"])
    for task in ("qamc", "mc"):
        for it in load_annotations(out / f"txt_demo-{task}.json", "test"):
            assert 0 <= it["answer"] < 5 and all(f"option_{i}" in it for i in range(5))
    mc = load_annotations(out / "txt_demo-mc.json", "val")
    ret = {it["video"]: it["caption"] for it in load_annotations(out / "txt_demo-retrieval.json", "val")}
    assert all(it["question"] == "" and it[f"option_{it['answer']}"] == ret[it["video"]] for it in mc)


def test_captioning_and_pretraining(demo):
    out, _ = demo
    cap = out / "demo_cap"
    y = dict(line.split(": ", 1) for line in (cap / "test.yaml").read_text().splitlines())
    assert set(y) == {"img", "label", "caption", "caption_linelist", "caption_coco_format"}
    img = TSVFile(cap / y["img"])
    capt = TSVFile(cap / y["caption"])
    assert len(img) == len(capt)
    row = img.row(0)
    assert row[0] == capt.row(0)[0] and json.loads(row[1]) == {"num_frames": 6} and len(row) == 8
    assert isinstance(json.loads(capt.row(0)[1])[0]["caption"], str)
    coco = json.loads((cap / y["caption_coco_format"]).read_text())
    assert {"images", "annotations"} <= set(coco) and {"image_id", "caption", "id"} <= set(coco["annotations"][0])
    pre = json.loads((out / "txt_demo.json").read_text())
    parts = read_parts(out, "demo", 2)
    assert sorted(r[0] for r in parts) == sorted(pre["train"]) and len(parts[0]) == 7
    assert sorted(TSVFile(out / "demo_val.tsv").keys()) == sorted(pre["val"])
    im = read_parts(out, "demoimg", 2)  # as many image parts as video parts
    assert len(im[0]) == 2
    assert sorted(json.loads((out / "txt_demoimg.json").read_text())["train"]) == sorted(r[0] for r in im)


def test_captioning_splits_load(demo):
    from lavender.data.caption_data import load_caption_split
    from lavender.metrics.caption import load_coco_references
    out, _ = demo
    seen = set()
    for split in ("train", "val", "test"):
        s = load_caption_split(f"demo_cap/{split}.yaml", data_dir=out, size_frame=4, size_img=32)
        per_video = 2  # two paraphrases per video: training samples, references for val/test
        assert len(s.samples) == per_video * len(s.keys) and all(len(v) == per_video for v in s.references.values())
        assert load_coco_references(s.coco_gt) == s.references
        assert s.store.clip(s.keys[0], train=split == "train").shape == (4, 3, 32, 32)
        assert len(s.store.frame_strings(s.keys[0])) == 6  # row[2:]: the num_frames field is not a frame
        assert not seen & set(s.keys)
        seen |= set(s.keys)
