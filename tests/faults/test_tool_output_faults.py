"""Tools fail when they produce nothing, evaluation needs a trained checkpoint, and prediction feeds the
model the frames it was trained on (issue 22, 8)."""
import json
import os
import pickle

import numpy as np
import pytest

from tiny import make_color_world, tiny_argv, write_video


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=8,
                            tasks={"tiny-qa": "qa", "tiny-ret": "retrieval"})


def _extract(script, folder, out):
    return script("_tools/extract_video-frame.py", ["--path", "x", "--input_dir", folder, "--output", out,
                                                    "--sample", "2", "--no_progress"])


def test_extract_frames_from_junk_files(tmp_path, script, refused):
    (tmp_path / "v").mkdir()
    for name in ("a.mp4", "b.avi"):
        (tmp_path / "v" / name).write_bytes(b"not a video at all" * 50)
    rc, _, err = _extract(script, tmp_path / "v", tmp_path / "x.pkl")
    refused(rc, err, "none of the 2 video file(s)", "a.mp4", "nothing written")
    assert not (tmp_path / "x.pkl").exists()


def test_extract_frames_from_a_folder_without_videos(tmp_path, script, refused):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.txt").write_text("no video here")
    rc, _, err = _extract(script, tmp_path / "v", tmp_path / "x.pkl")
    refused(rc, err, "holds no video files", "nothing written")
    assert not (tmp_path / "x.pkl").exists()


def test_extract_frames_from_truncated_videos(tmp_path, script, refused):
    (tmp_path / "v").mkdir()
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)]
    for name in ("a.mp4", "b.mp4"):
        path = write_video(tmp_path / "v" / name, frames)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])  # cut short, as by an interrupted download
    rc, _, err = _extract(script, tmp_path / "v", tmp_path / "x.pkl")
    refused(rc, err, "none of the 2 video file(s)", "nothing written")


def test_extract_tsv_from_an_empty_frame_pickle(tmp_path, script, refused):
    with open(tmp_path / "x.pkl", "wb") as f:
        pickle.dump({}, f)
    rc, _, err = script("_tools/extract_tsv.py", ["--path", tmp_path / "x"])
    refused(rc, err, "x.pkl holds no videos")
    assert not (tmp_path / "x.tsv").exists()


def test_retrieval_evaluation_without_a_checkpoint(world, tmp_path, script, refused):
    argv = tiny_argv(world, tmp_path / "out", "tiny-ret", "retrieval")
    refused(*script("eval_retrieval_tsv.py", argv)[::2], "--path_ckpt")
    assert not os.path.exists(tmp_path / "out") or not [d for d in os.listdir(tmp_path / "out") if d[0] == "_"]


def test_predict_takes_frames_and_size_from_the_run(world, tmp_path, script, caplog):
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", size_epoch=1, eval_splits=["val"])
    assert script("main_qaoe_mlm.py", argv)[0] == 0
    (run_dir,) = [os.path.join(tmp_path / "out", d) for d in os.listdir(tmp_path / "out") if d[0] == "_"]
    other = dict(json.load(open(argv[1])), size_img=64, size_frame=3)  # a config for another run
    json.dump(other, open(tmp_path / "other.json", "w"))
    ckpt = os.path.join(run_dir, "ckpt_violet_tiny-qa_1.pt")
    rc, out, err = script("_tools/predict.py", ["--path_ckpt", ckpt, "--config", tmp_path / "other.json",
                                                "--tsv", os.path.join(world, "img_tiny.tsv"), "--key", "video0",
                                                "--question", "what color is the shape?", "--json"])
    assert rc == 0, err[-2000:]
    assert json.loads(out)["frames"] == {"extracted": 3, "size_frame": 2, "size_img": 32}
    said = caplog.text + err
    assert "size_img = 32 taken from" in said and "size_frame = 2 taken from" in said and "had 64" in said
