"""_tools/predict.py and lavender.inference: a QA model trained on the colour world answers the colour
of mp4 files; the other modes agree with the model's own scores; a file gives the clip a tools-built
TSV gives; bad videos and checkpoints end in one line each."""
import glob
import json
import os
import random
import shutil

import numpy as np
import pytest
import torch

from lavender.run import main_guard, run
from lavender.data.codec import encode_frame
from lavender.data.tsv import write_tsv
from lavender.data.video_store import VideoStore
from lavender.inference import Predictor
from tiny import COLORS, _frame, make_color_world, tiny_argv, write_tiny_vocab, write_video
from tool_loader import load_tool

QUESTION = "what color is the shape?"


predict_tool = load_tool("predict")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A QA run on the colour world (64 train videos, 12 epochs of 8 steps: val accuracy 1.0 from
    epoch ~5 here) and one mp4 per colour (9 frames: the circle at 3 positions)."""
    root = tmp_path_factory.mktemp("predict")
    world = make_color_world(str(root / "world"), n_videos=128, tasks={"tiny-qa": "qa"})
    n_vocab = write_tiny_vocab(world)[1]
    # a little wider than tiny.TINY_MODEL (3 Swin stages, hidden 64): it learns the colours reliably
    model = {"swin_config": {"embed_dim": 32, "depths": [1, 1, 1], "num_heads": [1, 2, 4], "window_size": [2, 4, 4]},
             "bert_config": {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "intermediate_size": 128, "vocab_size": n_vocab, "max_position_embeddings": 128}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared machine: more threads only add contention
    try:
        log = run("qaoe", tiny_argv(world, root / "out", "tiny-qa", "qaoe", size_epoch=12, size_batch=8, lr=2e-3,
                                    img_transform=["img_center_crop"], eval_splits=["val"], logging_steps=1000, **model))
    finally:
        torch.set_num_threads(threads)
    assert log["ac_1_vl"][-1] == 1.0
    ckpt, = glob.glob(str(root / "out" / "_tiny-qa_*" / "ckpt_violet_tiny-qa_12.pt"))
    rng = random.Random(0)
    videos = {c: str(write_video(root / f"{c}.mp4", [_frame(c, "circle", t // 3, rng) for t in range(9)]))
              for c in COLORS}
    return {"ckpt": ckpt, "videos": videos, "world": world, "root": root}


def _predict(capsys, *argv):
    """(exit status, stdout, stderr) of the tool run in this process."""
    rc = main_guard(predict_tool.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _json(capsys, *argv):
    rc, out, err = _predict(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_answers_the_colour_of_each_video(trained, capsys, tmp_path):
    vids = trained["videos"]
    res = _json(capsys, "--path_ckpt", trained["ckpt"], *vids.values(), "--question", QUESTION)
    assert [r["video"] for r in res["results"]] == [f"{c}.mp4" for c in vids]
    for r, colour in zip(res["results"], vids):
        assert r["answers"][0]["answer"] == colour, r
        ps = [a["p"] for a in r["answers"]]
        assert len(ps) == 5 and ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1.0001
    # the run's store has 3 frames per video: files are read with as many, then size_frame 2 sampled
    assert res["frames"] == {"extracted": 3, "size_frame": 2, "size_img": 32}
    # the readable table, expected answers marked, and the picture
    grid = tmp_path / "qa.png"
    rc, out, err = _predict(capsys, "--path_ckpt", trained["ckpt"], vids["red"], vids["blue"], "--question", QUESTION,
                            "--answer", "red", "red", "--grid", grid)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"question: {QUESTION}" and lines[2].startswith("red.mp4") and lines[2].endswith("right")
    assert "wrong (expected red)" in lines[3]
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and grid.stat().st_size > 5_000


def test_a_file_gives_the_clip_of_a_tools_built_store(trained, tmp_path):
    """docs/tasks.md#predicting-on-your-own-video: a video file and the same video put through extract_video-frame.py + a TSV store
    give the model the same pixels."""
    p = Predictor.from_checkpoint(trained["ckpt"])
    raw = tmp_path / "_raw"
    raw.mkdir()
    shutil.copy(trained["videos"]["green"], raw / "green.mp4")
    load_tool("extract_video-frame").extract_videos(raw, tmp_path / "x.pkl", p.sample, progress=False)
    load_tool("extract_tsv").pkl_to_tsv(str(tmp_path / "x.pkl"), str(tmp_path / "img_x.tsv"), id2lineidx=True)
    store = VideoStore(tmp_path, "x", p.cfg.size_frame, p.cfg.size_img, p.cfg.img_transform)
    assert torch.equal(p.clip(p.read_video(raw / "green.mp4")), store.clip("green", train=False))


def test_text_ranking_agrees_with_the_models_pair_scores(trained, capsys, tmp_path):
    """The QA model was not trained to match videos and texts (retrieval does not learn on this world
    in a test's budget), so the check is that --text ranks by the model's own true/false score."""
    vids = list(trained["videos"].values())
    text = "a red circle moves right"
    grid = tmp_path / "text.png"
    res = _json(capsys, "--path_ckpt", trained["ckpt"], *vids, "--text", text, "--grid", grid)
    ranked = res["results"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4] and grid.stat().st_size > 5_000
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    p = Predictor.from_checkpoint(trained["ckpt"], family="retrieval")
    task = p.task()
    txt, mask = task.encode_text(text)
    ids = [task.ids["true"], task.ids["false"]]
    with torch.no_grad():
        for r in ranked:  # the full model forward, MLM logits at the [MASK] after the text
            logits = p.model(p.clip(p.read_video(r["source"]))[None], txt[None], mask[None])[0, -1]
            assert abs(torch.softmax(logits[ids], -1)[0].item() - r["score"]) < 1e-4


def test_multiple_choice_in_both_phrasings_and_captions(trained, capsys):
    vids = list(trained["videos"].values())[:2]
    options = ["red", "green", "blue", "yellow"]
    for mode in ("digit", "truefalse"):
        res = _json(capsys, "--path_ckpt", trained["ckpt"], *vids, "--question", QUESTION, "--options", *options,
                    "--mc_mode", mode)
        assert res["mc_mode"] == mode and len(res["results"]) == 2
        for r in res["results"]:
            assert len(r["p"]) == 4 and r["option"] == options[r["choice"]]
            # p is rounded in the output, so near-ties compare equal: the choice has the top (rounded) p
            assert r["p"][r["choice"]] == max(r["p"]) and all(0 <= x <= 1 for x in r["p"])
            if mode == "digit":  # a distribution over the options; true/false scores each option alone
                assert abs(sum(r["p"]) - 1) < 1e-3
    res = _json(capsys, "--path_ckpt", trained["ckpt"], *vids, "--caption", "--max_gen_length", "6")
    assert [r["video"] for r in res["results"]] == ["red.mp4", "green.mp4"]
    assert all(isinstance(r["caption"], str) and 0 < r["conf"] <= 1 for r in res["results"])


def test_tsv_keys_as_input(trained, capsys):
    store = os.path.join(trained["world"], "img_tiny.tsv")
    res = _json(capsys, "--path_ckpt", trained["ckpt"], "--tsv", store, "--key", "video1", "video2",
                "--question", QUESTION)
    assert [r["answers"][0]["answer"] for r in res["results"]] == ["green", "blue"]  # video i: colour i % 4
    rc, _, err = _predict(capsys, "--path_ckpt", trained["ckpt"], "--tsv", store, "--key", "nope",
                          "--question", QUESTION)
    assert rc == 2 and err.strip() == f"error: key 'nope' not found in {store} (128 keys)"


def test_bad_videos_one_line_each(trained, capsys, tmp_path):
    zero = tmp_path / "zero.avi"  # a container with a video stream but no frame
    import av
    with av.open(str(zero), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 48, 48, "yuv420p"
        c.start_encoding()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    red = trained["videos"]["red"]
    rc, out, err = _predict(capsys, "--path_ckpt", trained["ckpt"], red, zero, junk, empty, tmp_path / "gone.gif",
                            "--question", QUESTION)
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 4, err
    assert lines[0].startswith(f"error: {zero}: zero frames (")
    assert lines[1].startswith(f"error: {junk}: unreadable (")
    assert lines[2] == f"error: {empty}: empty file (0 bytes)"
    assert lines[3] == f"error: {tmp_path / 'gone.gif'}: no such file"
    # skip_bad: the others are predicted, the bad ones listed
    res = _json(capsys, "--path_ckpt", trained["ckpt"], red, zero, "--question", QUESTION, "--skip_bad", "true")
    assert [r["video"] for r in res["results"]] == ["red.mp4"] and len(res["skipped"]) == 1


def test_bad_checkpoints_one_line_each(trained, capsys, tmp_path):
    red = trained["videos"]["red"]
    ask = [red, "--question", QUESTION]

    def error(*argv):
        rc, out, err = _predict(capsys, *argv)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return err.strip()

    assert error("--path_ckpt", tmp_path / "none.pt", *ask) == f"error: checkpoint not found: {tmp_path / 'none.pt'}"
    rc, _, err = _predict(capsys, "--path_ckpt", tmp_path / "none.pt", red, tmp_path / "gone.mp4", "--question", "?")
    assert rc == 2 and err.splitlines() == [f"error: checkpoint not found: {tmp_path / 'none.pt'}",
                                            f"error: {tmp_path / 'gone.mp4'}: no such file"]  # all at once
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    shutil.copy(trained["ckpt"], lone)
    assert error("--path_ckpt", lone, *ask).startswith(f"error: no args.json beside {lone} (a run folder has one)")
    run_dir = os.path.dirname(trained["ckpt"])
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    assert error("--path_ckpt", garbage, "--config", f"{run_dir}/args.json", *ask).startswith(
        f"error: {garbage}: not a readable PyTorch checkpoint")
    # a run folder whose args.json is another model's (the tests' default tiny model): shapes differ
    mis = tmp_path / "mis"
    mis.mkdir()
    shutil.copy(tiny_argv(trained["world"], tmp_path / "cfg", "tiny-qa", "qaoe")[1], mis / "args.json")
    shutil.copy(trained["ckpt"], mis / "model.pt")
    msg = error("--path_ckpt", mis / "model.pt", *ask)
    assert msg.startswith(f"error: {mis / 'model.pt'} does not fit the settings of {mis / 'args.json'}: ")
    assert "of another shape" in msg
    # a file of another layout (BERT keys only)
    bert = tmp_path / "bert.pt"
    torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(3, 4)}, bert)
    assert error("--path_ckpt", bert, "--config", f"{run_dir}/args.json", *ask).startswith(
        f"error: {bert}: none of its 1 tensors fits this model (read as layout hf_bert)")
    if not torch.cuda.is_available():
        assert error("--path_ckpt", trained["ckpt"], *ask, "--device", "cuda") == \
            "error: --device cuda: no GPU is available here (use --device cpu)"
    # --debug keeps the traceback
    with pytest.raises(FileNotFoundError):
        main_guard(predict_tool.main, ["--path_ckpt", str(tmp_path / "none.pt"), *map(str, ask), "--debug"])


def test_multi_task_runs_answer_with_their_members_settings(tmp_path):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa", "tiny-retrieval": "retrieval"})
    entries = [{"type": "qaoe", "task": "tiny-qa", "size_txt": 10}, {"type": "retrieval", "task": "tiny-retrieval"}]
    from lavender.errors import ConfigError
    from lavender.config import load_config
    from lavender.models.factory import build_model
    from lavender.tokenizer import load_tokenizer
    cfg = load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=entries))
    tok = load_tokenizer(cfg.tokenizer)
    p = Predictor(cfg, tok, build_model(dict(cfg, heads={"fc_mtm": None})).eval())
    assert p.family == "qaoe" and p.cfg.task == "tiny-qa" and p.cfg.size_txt == 10
    r = p.view("retrieval")
    assert r.cfg.task == "tiny-retrieval" and r.cfg.size_txt == 12 and "--member" in r.note
    assert p.view("qamc", member="tiny-retrieval").cfg.task == "tiny-retrieval"
    with pytest.raises(ConfigError, match="the run's tasks are tiny-qa, tiny-retrieval"):
        p.view("qaoe", member="nope")
    rows = [["v"] + [encode_frame(_frame("red", "square", t, random.Random(0))) for t in range(3)]]
    write_tsv(str(tmp_path / "img_v.tsv"), rows, id2lineidx_path=str(tmp_path / "img_v.id2lineidx.pkl"))
    vids = [p.tsv_video(p.frame_store(str(tmp_path / "img_v.tsv")), "v")]
    assert len(p.answer(vids, QUESTION, k=3)[0]) == 3 and len(r.rank(vids, "a red square")) == 1
