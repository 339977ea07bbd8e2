"""Task families: token layouts and labels, baselines' heads, retrieval scoring, and learning."""
import random

import numpy as np
import pytest
import torch

from lavender.config import load_config
from lavender.engine.dist import DistInfo
from lavender.run import run
from lavender.models.factory import create_model
from lavender.tasks import build_task
from lavender.tasks.qa_mc import MCDigit, MCTrueFalse
from lavender.engine.evaluation import EvalContext
from lavender.tasks.retrieval_scoring import score_all_pairs
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
    metrics, scores = score_all_pairs(t, items, EvalContext(model, DistInfo()))
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


def _first_batch(t, split="val"):
    from lavender.engine.loader import EpochLoader
    ds = t.datasets[split]
    return next(iter(EpochLoader(ds, t.collate, 4, DistInfo(), shuffle=False)))


def test_task_tokens_of_fib_and_true_false_mc(world, tmp_path, tok):
    """The original's tokens (docs/original.md#task-tokens-and-prompts): FiB uses "oe", true/false MC "vtm"; their prompts stay their own."""
    model_cfg = None
    for task, type_, extra, token, prompt in (("tiny-fib", "qaoe", {}, "oe", "fib"),
                                              ("tiny-mc", "qamc", {"mc_mode": "truefalse"}, "vtm", "retmc"),
                                              ("tiny-qamc", "qamc", {"size_txt": 40}, "mc", "mc")):
        t, cfg = _task(world, tmp_path, task, type_, tok, enable_task_token=True, **extra)
        model_cfg = model_cfg or cfg
        torch.manual_seed(0)
        model = create_model(cfg, heads=t.heads()).eval()
        feat, mask = t.pretext(model, 2)
        assert torch.equal(feat, model.pretext(2, task_token=token)[0]), task
        assert t.prompt_name == prompt
        with torch.no_grad():
            loss, _ = t.train_step(model, _first_batch(t))  # the original's KeyError for "fib" / "retmc"
        assert torch.isfinite(loss)


def test_fib_blank_cut_off_by_truncation_counts_wrong(world, tmp_path, tok):
    t, cfg = _task(world, tmp_path, "tiny-fib", "qaoe", tok)
    long_q = "a circle " * 10 + "[MASK] moves right."                 # the blank falls beyond size_txt 12
    cut = t.encode({"video": "video0", "question": long_q, "answer": 0}, False, None)
    assert (cut["txt"] != t.ids["mask"]).all() and (cut["labels"] == -1).all()
    assert cut["label"] == -1                                          # was the answer: scored at [CLS]
    ok = t.encode({"video": "video1", "question": "a [MASK] circle moves right.", "answer": 0}, False, None)
    red = tok.convert_tokens_to_ids("red")
    top5 = torch.tensor([[red] * 5, [red] * 5])                      # a model answering "red" everywhere
    metrics = t.summarize({"label": torch.stack([cut["label"], ok["label"]]).numpy(), "top5": top5.numpy()}, "val")
    assert metrics["ac_1"] == 0.5 and metrics["n_invalid"] == 1


@pytest.mark.parametrize("where", ["append", "prepend", "replace", "insert"])
def test_mask_pos_layouts(world, tmp_path, tok, where):
    t, cfg = _task(world, tmp_path, "tiny-qamc", "qamc", tok, size_txt=40, mask_pos=where)
    item = t.datasets["val"].items[0]
    txt = t.encode(item, False, None)["txt"].tolist()
    ids, S = t.ids, cfg.size_txt
    body = t.tokens(t.text(item))[: S - 1]
    pad = [ids["pad"]] * (S - len(body))
    want = {"append": [ids["cls"]] + body + [ids["mask"], ids["sep"]] + pad,
            "prepend": [ids["mask"], ids["cls"]] + body + [ids["sep"]] + pad,
            "replace": [ids["mask"]] + body + [ids["sep"]] + pad}.get(where)
    if where == "insert":
        base = [ids["cls"]] + body + [ids["sep"]] + pad
        want = base[:10] + [ids["mask"]] + base[10:]
    assert txt == want and len(txt) == S + (2 if where == "replace" else 3)
    torch.manual_seed(0)
    model = create_model(cfg, heads=t.heads())
    batch = _first_batch(t)
    loss, _ = t.train_step(model, batch)
    model.eval()
    scores, logits, target = t.option_scores(model, batch)
    pos = txt.index(ids["mask"])
    digit = tok.convert_tokens_to_ids(str(item["answer"]))
    assert target[0] == digit and torch.isfinite(loss)
    hidden = t.fused(model, batch["img"], batch["txt"], batch["mask"])
    assert torch.allclose(logits[0], model.mlm(hidden[0, pos]), atol=1e-5)  # read at the [MASK], wherever it is


def test_multi_clip_testing_averages_visual_tokens(tmp_path, tok, monkeypatch):
    """docs/original.md#multi-clip-testing: with more frames than size_frame, clips at starts 0..C-1 are encoded and their visual
    tokens averaged (after the visual encoder), in the one full-retrieval scorer."""
    from lavender.tasks import retrieval_scoring as retrieval
    world = make_color_world(str(tmp_path / "w5"), n_videos=8, n_frames=5, tasks={"tiny-retrieval": "retrieval"})
    t, cfg = _task(world, tmp_path, "tiny-retrieval", "retrieval", tok, multi_clip_testing=True)
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    with torch.no_grad():
        model.fc_mtm.predictions.decoder.weight.mul_(50)  # spread the random model's scores
    shapes = []
    encode = retrieval.encode_clips
    monkeypatch.setattr(retrieval, "encode_clips", lambda m, img: shapes.append(tuple(img.shape)) or encode(m, img))
    items = t.datasets["test"].items
    _, scores = score_all_pairs(t, items, EvalContext(model, DistInfo()))
    assert shapes == [(1, 3, 2, 3, 32, 32)] * 2  # per video: 3 clips (5 frames, size_frame 2) of 2 frames
    videos = list(dict.fromkeys(it["video"] for it in items))
    txt = torch.stack([t.encode_text(it["caption"])[0] for it in items])
    mask = torch.stack([t.encode_text(it["caption"])[1] for it in items])
    with torch.no_grad():
        for j, v in enumerate(videos):
            fields = t.store.frame_strings(v)
            clips = [t.store.sampler.tf_eval(t.store.frames(v, fields=fields, start=s), None) for s in range(3)]
            feats = [model.encode_video(c[None]) for c in clips]
            f = torch.stack([x[0] for x in feats]).mean(0)
            col = t.pair_scores(model, f.expand(len(items), -1, -1), feats[0][1].expand(len(items), -1),
                                model.embed_text(txt, mask), mask)
            assert np.abs(col.numpy() - scores[:, j]).max() < 1e-5
            avg, m = encode(model, torch.stack(clips)[None])
            assert torch.allclose(avg, f, atol=1e-6) and torch.equal(m, feats[0][1])
            assert (feats[0][0] - feats[2][0]).abs().max() > 1e-2  # the clips differ: averaging matters
    t.cfg = cfg.copy()
    t.cfg.multi_clip_testing = False
    shapes.clear()
    score_all_pairs(t, items, EvalContext(model, DistInfo()))
    assert shapes == [(2, 2, 3, 32, 32)]  # without it: one uniform clip per video


def test_full_retrieval_evaluation_is_fp32_unless_asked(world, tmp_path, tok, monkeypatch):
    from lavender.tasks import retrieval
    t, cfg = _task(world, tmp_path, "tiny-retrieval", "retrieval", tok, deepspeed=True)
    seen = []
    monkeypatch.setattr(retrieval, "score_all_pairs", lambda task, items, ctx, **k: seen.append(ctx.precision) or ({}, None))
    ctx = EvalContext(None, DistInfo(), precision="fp16", out_dir=None)  # a training run's fp16 (deepspeed)
    t.evaluate("val", ctx)
    assert seen == ["fp32"]
    assert retrieval.eval_precision(cfg, torch.device("cuda")) == "fp32"
    cfg.precision = "bf16"
    assert retrieval.eval_precision(cfg, torch.device("cpu")) == "bf16"
