"""Pretraining: part files of a video and an image dataset, masking, segment-pure batches, learning,
and a checkpoint that a downstream task starts from."""
import glob
import json
import os
import random
import shutil
import sys

import pytest
import torch

from lavender.config import load_config
from lavender.run import run
from lavender.engine.sampler import ShardSampler
from lavender.tasks.pretrain import Pretrain
from lavender.tokenizer import load_tokenizer
from tiny import COLORS, make_color_world, tiny_argv, write_tiny_vocab

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "_tools"))
from split_tsv_parts import split_parts  # noqa: E402


@pytest.fixture(scope="module")
def pre_world(tmp_path_factory):
    """Colour world as pretraining parts: `tinyvid` (2 frames per row) and `tinyimg` (1 frame), 2 parts each."""
    root = make_color_world(str(tmp_path_factory.mktemp("pre")), n_videos=32, tasks={"tiny-retrieval": "retrieval"})
    keys = [f"video{i}" for i in range(32)]
    train, val = keys[:24], keys[24:]
    caps = {k: f"a {list(COLORS)[i % 4]} {('circle', 'square')[(i // 4) % 2]} moves right" for i, k in enumerate(keys)}
    for name, image in (("tinyvid", False), ("tinyimg", True)):
        split_parts(os.path.join(root, "img_tiny.tsv"), name, root, 2, train, val, image=image)
        with open(os.path.join(root, f"txt_{name}.json"), "w") as f:
            json.dump({"train": {k: [caps[k]] for k in train}, "val": {k: [caps[k]] for k in val}}, f)
    return root


def _argv(world, tmp_path, **kw):
    cfg = dict(dataset=["tinyvid", "tinyimg"], image_datasets=["tinyimg"], size_part=2, size_epoch=1,
               size_batch=4, img_transform=["img_center_crop"], eval_splits=["val"], lr=5e-3)
    cfg.update(kw)
    return tiny_argv(world, tmp_path, "tiny-pretrain", "pretrain", **cfg)


def test_segment_sampler_keeps_parts_apart():
    segs = [7, 5, 9]
    starts = [0, 7, 12, 21]
    part = {i: p for p in range(3) for i in range(starts[p], starts[p + 1])}
    for world in (1, 2, 3):
        per_rank = [list(ShardSampler(21, r, world, shuffle=True, seed=3, segments=segs, batch=4)) for r in range(world)]
        assert len({len(x) for x in per_rank}) == 1                     # same number of steps on every rank
        for idx in per_rank:
            assert len(idx) == len(ShardSampler(21, 0, world, shuffle=True, segments=segs, batch=4))
            for b in range(0, len(idx), 4):
                assert len({part[i] for i in idx[b:b + 4]}) == 1          # no batch mixes two parts
        assert set().union(*per_rank) == set(range(21))                 # every sample seen
    ev = [list(ShardSampler(21, r, 2, shuffle=False, segments=segs, batch=4)) for r in range(2)]
    assert set(ev[0]) | set(ev[1]) == set(range(21))


def test_masking_and_layout(pre_world, tmp_path):
    cfg = load_config(_argv(pre_world, tmp_path, p_mask=0.5))
    task = Pretrain(cfg, load_tokenizer(write_tiny_vocab(pre_world)[0]))
    ids, S = task.ids, cfg.size_txt
    assert task.datasets["train"].segments == [12, 12, 12, 12]
    assert task.datasets["val"].names == ["tinyvid", "tinyimg"]
    assert task.datasets["train"][0]["img"].shape[0] == cfg.size_frame   # video part
    assert task.datasets["train"][30]["img"].shape[0] == 1              # image part
    n_masked, n_words = 0, 0
    for i in range(40):
        out = task.encode_caption(["a red circle moves right"], random.Random(i))
        txt, lab = out["txt"].tolist(), out["label"].tolist()
        assert len(txt) == S + 1 and txt[-1] == ids["mask"] and lab[-1] == -1   # the VTM [MASK], never an MTM target
        assert txt[0] == ids["cls"] and lab[0] == -1
        for t, l in zip(txt[:-1], lab[:-1]):
            if l >= 0:
                assert t == ids["mask"] and l not in (ids["cls"], ids["sep"], ids["pad"])
        n_masked += sum(l >= 0 for l in lab)
        n_words += 5
    assert 0.35 < n_masked / n_words < 0.65                               # p_mask honoured


def test_pretrain_learns_and_feeds_finetuning(pre_world, tmp_path):
    random.seed(0)
    log = run("pretrain", _argv(pre_world, tmp_path, size_epoch=6))
    for k in ("ac_mtm_vl", "ac_vtm_vl", "ac_mtm_tinyvid_vl", "ac_vtm_tinyimg_vl", "ls_mtm_tr", "ls_vtm_tr"):
        assert len(log[k]) == 6, k
    assert log["ls_mtm_tr"][-1] < log["ls_mtm_tr"][0] - 1
    assert log["ac_mtm_vl"][-1] > 0.3                   # masked words are mostly colours/shapes: read off the frames
    ckpt = sorted(glob.glob(str(tmp_path / "_tiny-pretrain_*" / "ckpt_violet_tiny-pretrain_6.pt")))
    assert ckpt
    sd = torch.load(ckpt[0], map_location="cpu")
    assert "fc_mtm.predictions.decoder.weight" in sd and any(k.startswith("enc_img.") for k in sd)
    best_epoch = log["epoch"][max(range(6), key=lambda i: (log["ac_vtm_vl"][i], -i))]
    best = torch.load(ckpt[0].replace("_6.pt", "_best.pt"), map_location="cpu")
    at_best = torch.load(ckpt[0].replace("_6.pt", f"_{best_epoch}.pt"), map_location="cpu")
    assert all(torch.equal(best[k], at_best[k]) for k in sd)  # best = the checkpoint of the best val epoch
    # a downstream run starts from it (strict load) and evaluates zero-shot first
    ft = run("retrieval", tiny_argv(pre_world, tmp_path / "ft", "tiny-retrieval", "retrieval", path_ckpt=ckpt[0],
                                  max_steps=1, eval_splits=["val"], img_transform=["img_center_crop"]))
    assert ft["epoch"][0] == 0 and "r@1_vl" in ft


def test_size_part_and_dataset_dicts(pre_world, tmp_path):
    """The original's per-dataset dicts: size_part {name: parts} and dataset {name: folder}."""
    tok = load_tokenizer(write_tiny_vocab(pre_world)[0])
    cfg = load_config(_argv(pre_world, tmp_path, size_part={"tinyvid": 2, "tinyimg": 1}))
    task = Pretrain(cfg, tok)
    assert task.datasets["train"].names == ["tinyvid_train_0", "tinyvid_train_1", "tinyimg_train_0"]
    own = tmp_path / "own"
    own.mkdir()
    for f in glob.glob(os.path.join(pre_world, "*tinyimg*")):
        shutil.copy(f, own)
    task = Pretrain(load_config(_argv(pre_world, tmp_path, dataset={"tinyimg": str(own)}, size_part=1)), tok)
    assert task.datasets["train"].names == ["tinyimg_train_0"] and task.datasets["val"].names == ["tinyimg"]
    assert all(s.path.startswith(str(own)) for s in task.part_stores)  # the dict's folder, not data_dir
    with pytest.raises(Exception, match="size_part .* no entry for dataset 'tinyimg'"):
        Pretrain(load_config(_argv(pre_world, tmp_path, size_part={"tinyvid": 2})), tok)


@pytest.mark.parametrize("objectives", [["mtm"], ["vtm"]])
def test_pretrain_tasks_select_the_objectives(pre_world, tmp_path, objectives):
    tok = load_tokenizer(write_tiny_vocab(pre_world)[0])
    task = Pretrain(load_config(_argv(pre_world, tmp_path, pretrain_tasks=objectives, p_mask=0.5)), tok)
    masked = [(task.encode_caption(["a red circle moves right"], random.Random(i))["txt"][:-1] == task.ids["mask"]).any()
              for i in range(10)]
    assert any(masked) == ("mtm" in objectives)  # without MTM the captions are not masked
    log = run("pretrain", _argv(pre_world, tmp_path, pretrain_tasks=objectives, max_steps=2))
    other = {"mtm": "vtm", "vtm": "mtm"}[objectives[0]]
    assert f"ls_{objectives[0]}_tr" in log and f"ls_{other}_tr" not in log
    assert f"ac_{objectives[0]}_vl" in log and f"ac_{other}_vl" not in log
    assert task.main_metric == f"ac_{objectives[0]}"


def test_vtm_gradients_do_not_depend_on_thread_timing(pre_world, tmp_path):
    """The VTM negatives reuse each caption for several videos; the gradient of that gather must be summed in a
    fixed order, or two CPU runs of one command drift apart (docs/reliability.md#determinism)."""
    from lavender.models.factory import create_model
    bert = {"hidden_size": 384, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    cfg = load_config(_argv(pre_world, tmp_path, size_batch=8, size_txt=24, bert_config=bert, p_mask=0.0))
    task = Pretrain(cfg, load_tokenizer(write_tiny_vocab(pre_world)[0]))
    torch.manual_seed(0)
    model = create_model(cfg, task.heads()).eval()  # eval: no dropout, so every pass computes the same thing
    batch = task.collate([task.datasets["train"][i] for i in range(8)])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the gather's backward runs in parallel only with more than one thread
    try:
        grads = set()
        for _ in range(40):
            model.zero_grad()
            losses, _ = task.losses(model, batch, torch.Generator().manual_seed(0))
            losses["vtm"].backward()
            grads.add(b"".join(q.grad.numpy().tobytes() for q in model.parameters() if q.grad is not None))
    finally:
        torch.set_num_threads(threads)
    assert len(grads) == 1
