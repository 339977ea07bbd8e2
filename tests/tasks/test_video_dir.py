"""Every task family trains and evaluates from a folder of video files (`video_dir`), without any frame TSV,
and `_tools/predict.py` reads such a run's videos by id."""
import glob
import json
import os

import pytest

from lavender.run import main_guard, run
from tiny import COLORS, make_color_world, tiny_argv, write_color_videos
from tool_loader import load_tool

N = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Annotations of every kind and captioning yamls, with the frame TSV removed: only the mp4 files remain."""
    root = str(tmp_path_factory.mktemp("vd"))
    world = make_color_world(os.path.join(root, "w"), n_videos=N, tasks={"qa": "qa", "mc": "mc", "ret": "retrieval",
                                                                       "cap": "cap"})
    for f in glob.glob(os.path.join(world, "img_tiny.*")) + glob.glob(os.path.join(world, "cap", "*.img.tsv*")):
        os.remove(f)
    keys = [f"video{i}" for i in range(N)]
    caps = {k: [f"a {list(COLORS)[i % 4]} shape"] for i, k in enumerate(keys)}
    with open(os.path.join(world, "txt_pre.json"), "w") as f:
        json.dump({"train": {k: caps[k] for k in keys[:12]}, "val": {k: caps[k] for k in keys[12:]}}, f)
    return world, write_color_videos(os.path.join(root, "videos"), N)


FAMILIES = {  # family -> (task, extra config)
    "qaoe": ("qa", {}),
    "qamc": ("mc", {"mc_mode": "truefalse"}),
    "retrieval": ("ret", {"multi_clip_testing": True}),
    "captioning": ("cap", {"train_yaml": "cap/train.yaml", "val_yaml": "cap/val.yaml", "max_gen_length": 5,
                           "caption_meteor": False, "eval_splits": ["val"]}),
    "pretrain": ("pre", {"dataset": ["pre"], "eval_splits": ["val"]}),
    "multi-task": ("multi", {"datasets": [{"type": "qaoe", "task": "qa"}, {"type": "retrieval", "task": "ret"}]}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_runs_from_video_files(world, tmp_path, family):
    data, videos = world
    task, extra = FAMILIES[family]
    log = run(family, tiny_argv(data, tmp_path, task, family, video_dir=videos, video_sample=3, max_steps=2, **extra))
    assert "ls_tr" in log and any(k.endswith("_vl") for k in log), log
    assert not glob.glob(os.path.join(data, "**", "*.tsv.*"), recursive=True)  # nothing built on the side


def test_predict_reads_a_video_dir_run(world, tmp_path, capsys):
    data, videos = world
    run("qaoe", tiny_argv(data, tmp_path, "qa", "qaoe", video_dir=videos, video_sample=3, max_steps=2))
    ckpt = glob.glob(str(tmp_path / "_qa_*" / "ckpt_violet_qa_1.pt"))[0]
    tool = load_tool("predict")
    rc = main_guard(tool.main, ["--path_ckpt", ckpt, "--tsv", videos, "--key", "video1", "video2",
                                "--question", "what color is the shape?", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["video"] for r in out["results"]] == ["video1", "video2"]
    assert out["frames"]["extracted"] == 3  # the run's video_sample
    rc = main_guard(tool.main, ["--path_ckpt", ckpt, "--tsv", videos, "--key", "nope", "--question", "what?"])
    assert rc == 2 and "no video file for id 'nope'" in capsys.readouterr().err


def test_qa_warns_at_start_up_about_answers_it_cannot_produce(tmp_path):
    from lavender.config import load_config
    from lavender.tasks import build_task
    from lavender.tokenizer import load_tokenizer
    from tiny import lavender_log, write_tiny_vocab
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"qa": "qa"})
    d = json.load(open(os.path.join(world, "txt_qa.json")))
    d["train"][0]["answer_text"] = "dark red"
    d["val"][0]["answer_text"] = "vermilion"
    json.dump(d, open(os.path.join(world, "txt_qa.json"), "w"))
    cfg = load_config(tiny_argv(world, tmp_path, "qa", "qaoe"))
    with lavender_log() as records:
        build_task("qaoe", cfg, load_tokenizer(write_tiny_vocab(world)[0]))
    warning, = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert "not one vocabulary token" in warning and "train 1 of 4 (25.0%), val 1 of 2 (50.0%)" in warning
    assert "'dark red'" in warning and "'vermilion'" in warning


def test_pretraining_deals_the_folders_videos_into_size_part_parts(world, tmp_path):
    from lavender.config import load_config
    from lavender.errors import DataError
    from lavender.tasks import build_task
    from lavender.tokenizer import load_tokenizer
    from tiny import write_tiny_vocab
    data, videos = world
    tok = load_tokenizer(write_tiny_vocab(data)[0])
    argv = tiny_argv(data, tmp_path, "pre", "pretrain", video_dir=videos, dataset=["pre"], eval_splits=["val"])
    task = build_task("pretrain", load_config(argv + ["--size_part", "5"]), tok)
    train = task.datasets["train"]
    assert train.segments == [3, 3, 2, 2, 2] and train.names == [f"pre_train_{p}" for p in range(5)]
    assert [s.row(0)[0] for s in task.part_stores[:2]] == ["video0", "video1"]  # dealt in caption-file order
    assert task.datasets["val"].segments == [4]
    with pytest.raises(DataError, match="size_part 13 is more than the 12 captioned videos of pre"):
        build_task("pretrain", load_config(argv + ["--size_part", "13"]), tok)
