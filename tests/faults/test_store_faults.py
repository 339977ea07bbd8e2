"""Frames always come from the row of the video asked for: every read by key checks that the row carries
that key (a stale index with swapped offsets is an error naming the rebuild command), and a video id on two
rows is refused everywhere, with the keys and line numbers (issue 22, 2-3)."""
import os
import pickle

import pytest

from lavender.data.tsv import write_tsv
from tiny import frame_rows, make_color_world, tiny_argv

QA = "main_qaoe_mlm.py"


@pytest.fixture
def world(tmp_path):
    return make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa"})


def _argv(world, out):
    return tiny_argv(world, out, "tiny-qa", "qaoe", size_epoch=1, eval_splits=["val"])


def test_swapped_offsets_in_the_index_are_found_on_read(world, tmp_path, script, refused):
    pkl = os.path.join(world, "img_tiny.id2lineidx.pkl")
    with open(pkl, "rb") as f:
        index = pickle.load(f)
    index["video0"], index["video1"] = index["video1"], index["video0"]  # not the furthest row
    with open(pkl, "wb") as f:
        pickle.dump(index, f)
    rc, _, err = script(QA, _argv(world, tmp_path / "out"))
    line = refused(rc, err, "img_tiny.id2lineidx.pkl is stale", "make_id2lineidx_pkl.py")
    assert "'video0'" in line or "'video1'" in line


def _duplicate_row_store(world):
    """img_tiny.tsv with video3's row again at the end, its .lineidx written by hand, no .pkl."""
    tsv = os.path.join(world, "img_tiny.tsv")
    lines = open(tsv).read().splitlines(keepends=True)
    lines.append(lines[3])
    with open(tsv, "w") as f:
        f.writelines(lines)
    offs = [sum(len(x.encode()) for x in lines[:i]) for i in range(len(lines))]
    with open(os.path.join(world, "img_tiny.lineidx"), "w") as f:
        f.write("".join(f"{o}\n" for o in offs))
    os.remove(os.path.join(world, "img_tiny.id2lineidx.pkl"))
    return tsv


def test_a_duplicate_video_id_is_refused_by_the_loader(world, tmp_path, script, refused):
    _duplicate_row_store(world)
    rc, _, err = script(QA, _argv(world, tmp_path / "out"))
    refused(rc, err, "img_tiny.tsv", "'video3' on lines 4, 9")


def test_a_duplicate_video_id_is_refused_by_the_index_tool(world, tmp_path, script, refused):
    tsv = _duplicate_row_store(world)
    out = tmp_path / "x.id2lineidx.pkl"
    rc, _, err = script("_tools/make_id2lineidx_pkl.py", ["--input_file", tsv, "--output_file", out])
    refused(rc, err, "'video3' on lines 4, 9")
    assert not out.exists()


def test_a_duplicate_video_id_is_refused_by_the_writer(tmp_path):
    rows = frame_rows(4)
    rows.append(["vid1"] + rows[0][1:])
    with pytest.raises(Exception, match=r"x\.tsv: 1 video id\(s\) on more than one row \('vid1' on lines 2, 5\)"):
        write_tsv(tmp_path / "x.tsv", rows, id2lineidx_path=str(tmp_path / "x.id2lineidx.pkl"))
    assert os.listdir(tmp_path) == []  # nothing written, no temporary file left
