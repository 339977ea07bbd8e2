"""Task families: token layouts and labels, baselines' heads, retrieval scoring, and learning."""
import random

import numpy as np
import pytest
import torch

from lavender.config import load_config
from lavender.engine.dist import DistInfo
from lavender.engine.run import run
from lavender.models.pretrained import create_model
from lavender.tasks import build_task
from lavender.tasks.qa_mc import MCDigit, MCTrueFalse
from lavender.tasks.retrieval import score_all_pairs
from lavender.tokenizer import load_tokenizer
from tiny import make_color_world, tiny_argv, write_qa_classes, write_tiny_vocab


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


@pytest.fixture(scope="module")
def tok(world):
    return load_tokenizer(write_tiny_vocab(world)[0])


def _task(world, tmp_path, task, type_, tok, **kw):
    cfg = load_config(tiny_argv(world, tmp_path, task, type_, **kw))
    return build_task(type_, cfg, tok), cfg


def test_open_ended_layout(world, tmp_path, tok):
    t, cfg = _task(world, tmp_path, "tiny-qa", "qaoe", tok)
    S, ids = cfg.size_txt, t.ids
    out = t.encode({"video": "video0", "question": "what color is the shape?", "answer_text": "red"}, False, None)
    q = tok.encode("what color is the shape?", add_special_tokens=False)
    want = [ids["cls"]] + q + [ids["answer"], ids[":"], ids["mask"], ids["sep"]]
    assert out["txt"].tolist() == want + [0] * (S + 5 - len(want))            # length S+5
    red = tok.convert_tokens_to_ids("red")
    assert out["labels"].tolist() == [-1] * (len(q) + 3) + [red] + [-1] * (S + 5 - len(q) - 4)
    assert out["mask"].sum() == len(want)
    # a multi-token answer has no label: no training signal, counted wrong
    assert t.encode({"video": "video0", "question": "q", "answer_text": "bluered"}, False, None)["label"] == -1


def test_fill_in_the_blank_layout(world, tmp_path, tok):
    t, cfg = _task(world, tmp_path, "tiny-fib", "qaoe", tok, size_vocab=5)
    assert t.fib and t.label2ans[0] == "red"
    out = t.encode({"video": "video0", "question": "a [MASK] circle moves right.", "answer": 0}, False, None)
    assert len(out["txt"]) == cfg.size_txt
    pos = (out["txt"] == t.ids["mask"]).nonzero().flatten().tolist()
    assert pos == [2] and out["labels"][2] == tok.convert_tokens_to_ids("red")


def test_multiple_choice_layouts(world, tmp_path, tok):
    t, cfg = _task(world, tmp_path, "tiny-qamc", "qamc", tok, size_txt=40)
    assert isinstance(t, MCDigit)
    item = t.datasets["val"].items[0]
    out = t.encode(item, False, None)
    assert len(out["txt"]) == cfg.size_txt + 3
    txt = out["txt"].tolist()
    m = txt.index(t.ids["mask"])
    assert txt[m + 1] == t.ids["sep"] and txt[0] == t.ids["cls"]
    assert "option 4 : purple" in tok.decode(txt[1:m])
    t2, cfg2 = _task(world, tmp_path, "tiny-mc", "qamc", tok, mc_mode="truefalse")
    assert isinstance(t2, MCTrueFalse)
    out = t2.encode(t2.datasets["val"].items[0], False, None)
    assert out["txt"].shape == (5, cfg2.size_txt + 1)
    assert (out["txt"][:, -1] == t2.ids["mask"]).all() and (out["mask"][:, -1] == 1).all()


@pytest.mark.parametrize("task,type_,extra", [
    ("tiny-qa", "qaoe", {"size_vocab": 5}),
    ("tiny-fib", "qaoe", {"size_vocab": 5}),
    ("tiny-qamc", "qamc", {}),
    ("tiny-mc", "qamc", {"mc_mode": "truefalse"}),
    ("tiny-retrieval", "retrieval", {}),
])
def test_task_specific_baselines_train_a_step(world, tmp_path, task, type_, extra):
    if task == "tiny-qa":  # the classifier baseline reads integer classes from `answer`
        task = write_qa_classes(world)
    log = run(type_, tiny_argv(world, tmp_path, task, type_, head="task_specific", max_steps=2, **extra))
    assert np.isfinite(log["ls_tr"][0])
    main = {"qaoe": "ac_1_vl", "qamc": "ac_vl", "retrieval": "r@1_vl"}[type_]
    assert main in log


def test_cached_retrieval_scores_equal_naive_pairs(world, tmp_path, tok):
    t, cfg = _task(world, tmp_path, "tiny-retrieval", "retrieval", tok, retrieval_text_batch=3)
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    items = t.datasets["test"].items
    metrics, scores = score_all_pairs(t, model, items, DistInfo(), cfg)
    videos = list(dict.fromkeys(it["video"] for it in items))
    naive = np.zeros_like(scores)
    with torch.no_grad():
        for j, v in enumerate(videos):
            img = t.store.clip(v, False)[None]
            for i, it in enumerate(items):
                txt, mask = t.encode_text(it["caption"])
                logits = model(img, txt[None], mask[None])[0, -1]      # full MLM head, full forward
                p = torch.softmax(logits[[t.ids["true"], t.ids["false"]]], -1)[0]
                naive[i, j] = p.item()
    assert np.abs(naive - scores).max() < 1e-5
    assert set(metrics) >= {"r@1", "r@5", "r@10", "median_rank", "mean_rank", "v2t_r@1"}


def test_open_ended_qa_learns(tmp_path):
    world = make_color_world(str(tmp_path / "w"), n_videos=48, tasks={"tiny-qa": "qa"})
    random.seed(0)
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=12, size_batch=8,
                                     lr=5e-3, img_transform=["img_center_crop"], eval_splits=["val"]))
    assert log["ls_tr"][-1] < log["ls_tr"][0] - 2          # from ~ln(vocab) toward the 4 colours
    assert log["ac_1_vl"][-1] >= 0.45                        # chance: 0.25 (4 colours, balanced)


def test_option_index_qa_learns(tmp_path):
    """TGIF-Action style: the answer's option index at the [MASK], readable only from the frames."""
    world = make_color_world(str(tmp_path / "w"), n_videos=48, tasks={"tiny-qamc": "qamc"})
    random.seed(0)
    log = run("qamc", tiny_argv(world, tmp_path, "tiny-qamc", "qamc", size_epoch=12, size_batch=4,
                                        lr=5e-3, img_transform=["img_center_crop"], eval_splits=["val"],
                                        size_txt=40))
    assert log["ls_tr"][-1] < log["ls_tr"][0] - 2
    assert log["ac_vl"][-1] >= 0.5                           # chance: 0.25 (the answer is one of 4 colours)
