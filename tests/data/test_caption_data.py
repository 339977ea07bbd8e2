"""SwinBERT-layout captioning splits: yaml entries, linelist samples, references, the frame-column rule, errors."""
import json

import numpy as np
import pytest

from lavender.data.caption_data import load_caption_split
from lavender.errors import DataError
from lavender.data.codec import encode_frame, frame_fields
from lavender.data.tsv import write_tsv

CAPS = {"v0": ["a red circle moves right", "a circle moves"], "v1": ["a blue square moves up"],
        "v2": ["a green circle changes color", "the circle turns green", "a shape"]}


def frame(value):
    return encode_frame(np.full((40, 40, 3), value, np.uint8))


def write_split(root, name="train", caps=CAPS, linelist=True, coco="entry", img_keys=None, n_frames=3,
                extra=""):
    """{name}.yaml + img TSV (key, field, frames) + caption TSV (+ linelist, coco json) in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    keys = list(caps) if img_keys is None else img_keys
    write_tsv(root / f"{name}.img.tsv",
              ([k, json.dumps({"num_frames": n_frames})] + [frame(10 * i + t) for t in range(n_frames)]
               for i, k in enumerate(keys)))
    write_tsv(root / f"{name}.caption.tsv", ([k, json.dumps([{"caption": c} for c in v])] for k, v in caps.items()))
    lines = [f"{i}\t{j}" for i, k in enumerate(caps) for j in range(len(caps[k]))]
    text = f"img: {name}.img.tsv\nlabel: {name}.caption.tsv\ncaption: {name}.caption.tsv\n"
    if linelist:
        (root / f"{name}.linelist.tsv").write_text("\n".join(lines) + "\n")
        text += f"caption_linelist: {name}.linelist.tsv\n"
    coco_json = {"images": [{"id": k} for k in caps],
                 "annotations": [{"image_id": k, "caption": c, "id": 0} for k in caps for c in caps[k]]}
    if coco == "entry":
        (root / f"{name}_coco.json").write_text(json.dumps(coco_json))
        text += f"caption_coco_format: {name}_coco.json\n"
    elif coco == "beside":
        (root / f"{name}_caption_coco_format.json").write_text(json.dumps(coco_json))
    (root / f"{name}.yaml").write_text(text + extra)
    return root / f"{name}.yaml"


def test_split_with_linelist(tmp_path):
    y = write_split(tmp_path)
    s = load_caption_split(y, size_frame=2, size_img=32)
    assert [(x["video"], x["caption"]) for x in s.samples] == [(k, c) for k in CAPS for c in CAPS[k]]
    assert s.references == CAPS and s.keys == ["v0", "v1", "v2"]
    assert s.coco_gt == str(tmp_path / "train_coco.json") and s.n_skipped == 0
    clip = s.store.clip("v1", train=False)
    assert clip.shape == (2, 3, 32, 32)
    assert s.store.frame_strings("v1") == [frame(10 + t) for t in range(3)]  # row[2:]: the json field skipped


def test_without_linelist_first_caption_and_default_coco(tmp_path):
    s = load_caption_split(write_split(tmp_path, linelist=False, coco="beside"), size_frame=2, size_img=32)
    assert [(x["video"], x["caption"]) for x in s.samples] == [(k, v[0]) for k, v in CAPS.items()]
    assert s.coco_gt == str(tmp_path / "train_caption_coco_format.json")
    s = load_caption_split(write_split(tmp_path / "b", linelist=False, coco=None), size_frame=2, size_img=32)
    assert s.coco_gt is None


def test_swinbert_frame_column_rule():
    row = ["v", "{}", "f1", "f2", "f3", "f4"]
    assert frame_fields(row, "swinbert", size_frame=4) == ["f1", "f2", "f3", "f4"]  # >= T + 2 fields
    assert frame_fields(row, "swinbert", size_frame=5) == ["f4"]  # fewer: the single image row[-1]
    assert frame_fields(["v", "img"], "swinbert", size_frame=1) == ["img"]
    with pytest.raises(ValueError, match="size_frame"):
        frame_fields(row, "swinbert")


def test_paths_relative_to_data_dir(tmp_path):
    """The original configs name `MSRVTT-v2/train_32frames.yaml` under data_dir; its entries may also be
    relative to data_dir instead of the yaml's folder."""
    sub = tmp_path / "MSRVTT-v2"
    write_split(sub, linelist=False)
    text = (sub / "train.yaml").read_text().replace(": train.", ": MSRVTT-v2/train.")
    (sub / "train.yaml").write_text(text)
    s = load_caption_split("MSRVTT-v2/train.yaml", data_dir=tmp_path, size_frame=2, size_img=32)
    assert s.yaml == str(sub / "train.yaml") and s.references == CAPS


@pytest.mark.parametrize("case,match", [
    ("no_yaml", "nowhere.yaml not found"),
    ("no_caption_entry", "missing entry 'caption'"),
    ("missing_file", "img file 'gone.tsv' not found"),
    ("composite", "composite stores"),
    ("not_mapping", "expected a mapping"),
])
def test_yaml_errors(tmp_path, case, match):
    y = write_split(tmp_path)
    text = y.read_text()
    if case == "no_yaml":
        y = tmp_path / "nowhere.yaml"
    elif case == "no_caption_entry":
        y.write_text("\n".join(l for l in text.splitlines() if not l.startswith("caption:")))
    elif case == "missing_file":
        y.write_text(text.replace("img: train.img.tsv", "img: gone.tsv"))
    elif case == "composite":
        y.write_text(text + "composite: true\n")
    else:
        y.write_text("- img\n- caption\n")
    with pytest.raises(DataError, match=match):
        load_caption_split(y, size_frame=2, size_img=32)


def test_bad_rows_error_or_skip(tmp_path):
    caps = dict(CAPS, v3=[], v4=["a caption"])  # v3: empty list; v4: no frames
    y = write_split(tmp_path, caps=caps, img_keys=["v0", "v1", "v2", "v3"])
    with open(tmp_path / "train.linelist.tsv", "a") as f:
        f.write("1\t5\n9\t0\n")  # caption index and row out of range
    with pytest.raises(DataError) as err:
        load_caption_split(y, size_frame=2, size_img=32)
    msg = str(err.value)
    assert "4 problem(s)" in msg and "train.yaml" in msg
    assert "key 'v3'" in msg and "empty caption list" in msg and "'v4' is not in the frame TSV" in msg
    assert "line 8: caption index 5 out of range" in msg  # 3 + 1 + 3 lines written, then ours
    s = load_caption_split(y, size_frame=2, size_img=32, skip_bad=True)
    assert s.keys == ["v0", "v1", "v2"] and set(s.references) == {"v0", "v1", "v2"}
    assert len(s.samples) == 6 and s.n_skipped == 4 and s.store.n_skipped == 4
    assert set(s.store.skip_reasons) == {"v3", "v4", "linelist line 8", "linelist line 9"}


def test_malformed_caption_json(tmp_path):
    y = write_split(tmp_path, linelist=False)
    write_tsv(tmp_path / "train.caption.tsv", [["v0", '[{"caption": "ok"}]'], ["v1", "not json"],
                                               ["v2", '["a plain string"]']])
    with pytest.raises(DataError) as err:
        load_caption_split(y, size_frame=2, size_img=32)
    assert "row 1 (key 'v1')" in str(err.value) and "row 2 (key 'v2')" in str(err.value)
