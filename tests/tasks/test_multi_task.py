"""Multi-task training: every family in one run through the script, the baseline heads, the same task
sequence on every rank, and a killed run that resumes to the same result."""
import json
import os
import runpy
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lavender.errors import ConfigError
from lavender.data.collate import collate_dicts
from lavender.engine.dist import DistInfo
from lavender.engine.loader import EpochLoader, MetaLoader
from lavender.run import run
from lavender.paths import REPO_ROOT
from tiny import make_color_world, run_killed, tiny_argv, write_qa_classes

ENTRIES = [
    {"type": "qaoe", "task": "tiny-qa"},
    {"type": "qaoe", "task": "tiny-fib", "size_vocab": 5},
    {"type": "qamc", "task": "tiny-qamc", "size_txt": 40},
    {"type": "qamc", "task": "tiny-mc", "mc_mode": "truefalse"},
    {"type": "retrieval", "task": "tiny-retrieval"},
    {"type": "captioning", "task": "tiny-cap", "train_yaml": "tiny-cap/train.yaml", "val_yaml": "tiny-cap/val.yaml",
     "test_yaml": "tiny-cap/test.yaml", "max_gen_length": 8, "caption_meteor": False},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


def _argv(world, out, **extra):
    return tiny_argv(world, out, "tiny-multi", "multi-task", datasets=ENTRIES, **extra)


def _only_run_dir(out):
    dirs = [d for d in os.listdir(out) if d.startswith("_tiny-multi_")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


def test_every_family_in_one_run_through_the_script(world, tmp_path):
    argv = _argv(world, tmp_path, size_epoch=1, max_steps=6, task_sampling="proportional")
    old = sys.argv
    sys.argv = ["main_multi_task_mlm.py"] + argv
    try:
        runpy.run_path(os.path.join(REPO_ROOT, "main_multi_task_mlm.py"), run_name="__main__")
    finally:
        sys.argv = old
    run_dir = _only_run_dir(tmp_path)
    log = json.load(open(os.path.join(run_dir, "log.json")))
    for key in ("tiny-qa_ac_1", "tiny-fib_ac_1", "tiny-qamc_ac", "tiny-mc_ac", "tiny-retrieval_r@1", "tiny-cap_CIDEr",
                "mean"):
        assert key + "_vl" in log and key + "_ts" in log, key
    assert 0 <= log["mean_vl"][0] <= 1 and "ls_tr" in log
    best = json.load(open(os.path.join(run_dir, "best.json")))
    assert set(best) == {"", "tiny-qa", "tiny-fib", "tiny-qamc", "tiny-mc", "tiny-retrieval", "tiny-cap"}
    assert best[""]["epoch"] == 1 and os.path.exists(os.path.join(run_dir, "ckpt_violet_tiny-multi_best.pt"))
    # each task writes its own files into its own sub-folder (retrieval's score matrix, the caption predictions)
    assert os.path.exists(os.path.join(run_dir, "tiny-retrieval", "scores_val.npy"))
    assert os.path.exists(os.path.join(run_dir, "tiny-cap", "caption_predictions", "ep1_pred.tiny-cap.test.max8.tsv"))
    preds = json.load(open(os.path.join(run_dir, "predictions_val.json")))["predictions"]
    assert {"tiny-qa", "tiny-fib", "tiny-qamc", "tiny-mc", "tiny-cap"} <= set(preds)


def test_multi_head_baseline_builds_the_original_heads(world, tmp_path):
    entries = [{"type": "qaoe", "task": write_qa_classes(world), "size_vocab": 5}] + ENTRIES[1:]
    log = run("multi-task", tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=entries, size_epoch=1,
                                      max_steps=4, head="task_specific", eval_splits=["val"]))
    assert "tiny-qamc_ac_vl" in log
    sd = torch.load(os.path.join(_only_run_dir(tmp_path), "ckpt_violet_tiny-multi_1.pt"), weights_only=True)
    heads = {k.split(".")[0] for k in sd if k.startswith("fc")}
    # retrieval and the true/false MC share `fc` (one score per pair); the others get their own, except
    # captioning, which keeps the MLM head as in the original
    assert heads == {"fc", "fc_qaoe_tiny_qa_ts", "fc_qaoe_tiny_fib", "fc_qamc_tiny_qamc", "fc_mtm"}
    assert sd["fc_qamc_tiny_qamc.3.weight"].shape[0] == 5 and sd["fc.3.weight"].shape[0] == 1


def test_entry_keys_that_belong_to_the_run_are_refused(world, tmp_path):
    bad = [dict(ENTRIES[0], lr=1e-3)]
    with pytest.raises(ConfigError, match="lr"):
        run("multi-task", tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=bad))


def test_killed_multi_task_run_resumes_to_the_same_result(world, tmp_path, monkeypatch):
    common = dict(size_epoch=2, eval_splits=["val"])
    full = run("multi-task", _argv(world, tmp_path / "a", **common))
    argv = _argv(world, tmp_path / "b", save_steps=1, **common)
    run_killed("multi-task", argv, monkeypatch, lambda st: st["epoch"] == 1 and st["loader"]["pos"] == 5)
    resumed = run("multi-task", argv + ["--resume", "latest"])
    assert resumed["ls_tr"] == pytest.approx(full["ls_tr"], abs=1e-6)
    assert resumed["tiny-qa_ls_tr"] == pytest.approx(full["tiny-qa_ls_tr"], abs=1e-6)
    assert resumed["tiny-cap_ls_tr"] == pytest.approx(full["tiny-cap_ls_tr"], abs=1e-6)  # same caption masks
    assert resumed["mean_vl"] == full["mean_vl"]
    a = torch.load(os.path.join(_only_run_dir(tmp_path / "a"), "ckpt_violet_tiny-multi_2.pt"), weights_only=True)
    b = torch.load(os.path.join(_only_run_dir(tmp_path / "b"), "ckpt_violet_tiny-multi_2.pt"), weights_only=True)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6


# ---------------------------------------------------------------------- the task schedule
class _Range:
    def __init__(self, n):
        self.n = n

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"index": i}


def _meta(rank, world, sampling="uniform", sizes=(("a", 10), ("b", 4), ("c", 7)), batch=2, temperature=None):
    d = DistInfo(rank, world)
    loaders = {name: EpochLoader(_Range(n), collate_dicts, batch, d, shuffle=True, seed=3) for name, n in sizes}
    return MetaLoader(loaders, sampling, 5, temperature)


def _share(sampling, temperature=None):
    """The share of steps the small task gets over 30 epochs (batches 160 : 10)."""
    m = _meta(0, 1, sampling, (("big", 160), ("small", 10)), 1, temperature)
    drawn = [t for e in range(1, 31) for t in m.schedule(e)]
    return drawn.count("small") / len(drawn)


def test_temperature_sampling_goes_from_proportional_to_uniform():
    # proportional 1/17; T=2: sqrt(160):sqrt(10) = 4:1 -> 1/5; T=4: 2:1 -> 1/3; uniform 1/2
    assert _share("proportional") == pytest.approx(1 / 17, abs=0.01)
    assert _share("temperature", 1.0) == pytest.approx(1 / 17, abs=0.01)
    assert _share("temperature", 2.0) == pytest.approx(1 / 5, abs=0.015)
    assert _share("temperature", 4.0) == pytest.approx(1 / 3, abs=0.015)
    assert _share("uniform") == pytest.approx(1 / 2, abs=0.015)
    with pytest.raises(ValueError, match="temperature"):
        MetaLoader({"a": None}, "softmax", 5)
    with pytest.raises(ValueError, match="a temperature goes with task_sampling temperature"):
        MetaLoader({"a": None}, "temperature", 5)  # no default that could differ from task_temperature's


def _schedule_worker(rank, world, init, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(rank)  # the schedule must not depend on a rank's global RNG
    m = _meta(rank, world)
    seq = []
    for epoch in (1, 2):
        m.set_epoch(epoch)
        seq += [(b["task"], b["index"].tolist()) for b in m]
    every = [None] * world
    dist.all_gather_object(every, [t for t, _ in seq])
    torch.save({"tasks": every, "indices": [i for _, i in seq]}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_all_ranks_draw_the_same_task_sequence(tmp_path):
    out = str(tmp_path / "seq")
    mp.spawn(_schedule_worker, args=(2, f"file://{tmp_path / 'pg'}", out), nprocs=2)
    r0, r1 = torch.load(out + ".0"), torch.load(out + ".1")
    assert r0["tasks"][0] == r0["tasks"][1] and len(r0["tasks"][0]) == 2 * (3 + 1 + 2)
    assert set(r0["tasks"][0]) == {"a", "b", "c"}
    # the ranks see different shards of each task's data
    assert r0["indices"] != r1["indices"]


def test_schedule_resumes_mid_epoch_and_members_restart_when_exhausted():
    m = _meta(0, 1)
    m.set_epoch(1)
    it = iter(m)
    head = [(b["task"], b["index"].tolist()) for _, b in zip(range(5), it)]
    state = m.state_dict()
    tail = [(b["task"], b["index"].tolist()) for b in it]
    m2 = _meta(0, 1)
    m2.load_state_dict(state)
    m2.set_epoch(1)
    assert [(b["task"], b["index"].tolist()) for b in m2] == tail
    seen = [t for t, _ in head + tail]
    assert len(seen) == len(m) == 5 + 2 + 4
    # uniform draws make some member run out within the epoch: it starts its next pass
    assert any(ld.epoch > 1 for ld in m.loaders.values())
    prop = [t for e in range(1, 41) for t in _meta(0, 1, "proportional").schedule(e)]
    assert abs(prop.count("a") / len(prop) - 5 / 11) < 0.05 and abs(prop.count("b") / len(prop) - 2 / 11) < 0.05
