"""The demo dataset generator at a tiny size: every file, in the documented formats, byte-identical from
run to run."""
import hashlib
import json
from pathlib import Path

import pytest

from lavender.data.tsv import TSVFile
from tiny import read_parts
from lavender.data.video_store import VideoStore
from lavender.data.annotations import load_annotation_file, load_annotations
from tool_loader import load_tool


SMALL = dict(n_videos=24, sample=6, seed=3, size_part=2, verbose=False)

# sha256 of the small world (SMALL), see digest(): the text files (annotations, captions, README.txt,
# yamls) depend on the seed and numpy's Generator only; the whole tree (mp4, JPEG frames in the TSVs)
# also on the encoders, so its checksum is checked with the library versions it was recorded with.
TEXT_SHA256 = "78973fbad2dd72e61a39c8581c5a050dce954ca1d603dc7fe68a471475556141"
ALL_SHA256 = "175e43b39d66d54c085c544d0b5b0b4bcd1241a837e276e10af3a422ee5abf6f"
ALL_VERSIONS = "av 18.1.0 libavcodec 62.28.102 pillow 13.0.0 opencv 5.1.0 numpy 2.4.6"
TEXT_FILES = ("*.json", "*.txt", "*.yaml", "*.caption.tsv", "*.linelist.tsv")


def digest(out, patterns=("*",)):
    """sha256 over (relative path, bytes) of the files under `out` matching `patterns`, in sorted order."""
    files = sorted({p for pat in patterns for p in Path(out).rglob(pat) if p.is_file()})
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(out).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def library_versions() -> str:
    import av
    import cv2
    import numpy
    import PIL
    return (f"av {av.__version__} libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))} "
            f"pillow {PIL.__version__} opencv {cv2.__version__} numpy {numpy.__version__}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    base = load_tool("make_demo_data").make_demo(out, workers=2, **SMALL)
    return out, base


def test_two_runs_are_byte_identical(demo, tmp_path):
    """Another run (one worker instead of two) writes the same bytes in every file, mp4s included."""
    out, _ = demo
    load_tool("make_demo_data").make_demo(tmp_path, workers=1, **SMALL)
    a = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert a == b
    assert [n for n in a if (out / n).read_bytes() != (tmp_path / n).read_bytes()] == []


def test_checksum(demo):
    out, _ = demo
    assert digest(out, TEXT_FILES) == TEXT_SHA256
    if library_versions() != ALL_VERSIONS:
        pytest.skip(f"whole-tree checksum recorded with {ALL_VERSIONS}; here {library_versions()}")
    assert digest(out) == ALL_SHA256


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
