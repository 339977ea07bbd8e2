"""Where this version now does what the original did (docs/differences.md): fp16 with a loss scaler on a GPU
whatever `deepspeed` says, the absolute learning-rate floor, no update from a batch without targets, epoch 0
evaluated in captioning, the original's integer median rank, and a warning for keys a family does not read."""
import json
import os

import numpy as np
import pytest
import torch

from lavender.config import FAMILY_KEYS, load_config
from lavender.engine import trainer
from lavender.engine.optim import build_optimizer, build_scheduler
from lavender.engine.precision import resolve_precision
from lavender.metrics import retrieval_metrics
from lavender.models.factory import create_model
from lavender.paths import REPO_ROOT
from lavender.run import run
from lavender.tasks import build_task
from lavender.tasks.qa_oe import QAOpenEnded
from lavender.tokenizer import load_tokenizer
from tiny import lavender_log, make_color_world, tiny_argv, write_tiny_vocab

CUDA, CPU = torch.device("cuda"), torch.device("cpu")  # a device object only: no GPU is needed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


def _only_run_dir(out):
    dirs = [d for d in os.listdir(out) if d.startswith("_")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


# ----------------------------------------------------------------------------- precision
@pytest.mark.parametrize("deepspeed", [True, False])
def test_auto_precision_is_fp16_on_a_gpu_whatever_deepspeed_says(deepspeed):
    """The original trained in fp16 on one GPU too (its args turn DeepSpeed off there, not fp16)."""
    cfg = load_config(["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json"),
                       "--deepspeed", str(deepspeed).lower()])
    assert resolve_precision(cfg, CUDA) == "fp16"
    assert resolve_precision(cfg, CPU) == "fp32"  # the CPU default (docs/performance.md)
    for p in ("fp32", "bf16"):
        cfg.precision = p
        assert resolve_precision(cfg, CUDA) == p
    cfg.precision = "fp16"
    assert resolve_precision(cfg, CPU) == "fp32"  # fp16 needs a GPU


def test_deepspeed_is_said_to_do_nothing():
    with lavender_log() as records:
        load_config(["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json")])
    warned = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert any("deepspeed = True has no effect" in w and "fp16" in w for w in warned), warned


def test_the_trainer_takes_the_gpu_precision_and_its_loss_scaler(world, tmp_path, monkeypatch):
    """A Trainer on a GPU (its precision resolved for a fake cuda device; the loss scaler then runs on the
    CPU's autocast) trains in fp16 with the scaler enabled and counts the steps the scaler skips."""
    monkeypatch.setattr(trainer, "resolve_precision", lambda cfg, device: resolve_precision(cfg, CUDA))
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=1, max_steps=2))
    assert "n_skipped_steps_tr" in log  # only fp16 runs have a loss scaler


# ----------------------------------------------------------------------------- learning-rate floor
def test_learning_rate_floor_is_absolute():
    """WarmupLinearLR: lr = max(1e-8, peak * factor) in every group (the first step runs at 1e-8)."""
    m = torch.nn.ModuleDict({"swin": torch.nn.Linear(2, 2), "other": torch.nn.Linear(2, 2)})
    cfg = load_config(["--lr", "2e-5", "--vis_backbone_lr_mul", "3"])
    opt = build_optimizer(m, cfg)
    sched = build_scheduler(opt, 100)
    peaks = [g["initial_lr"] for g in opt.param_groups]
    assert sorted(set(peaks)) == pytest.approx([2e-5, 6e-5])

    def original(step, peak):
        warm = 10
        f = step / warm if step < warm else (100 - min(step, 100)) / (100 - warm)
        return max(1e-8, peak * f)
    for step in range(101):
        for g, peak in zip(opt.param_groups, peaks):
            assert g["lr"] == pytest.approx(original(step, peak), rel=1e-9, abs=1e-20), (step, peak)
        opt.step()
        sched.step()
    assert all(g["lr"] == pytest.approx(1e-8) for g in opt.param_groups)


# ----------------------------------------------------------------------------- batches without targets
def _answers_out_of_vocabulary(monkeypatch, every=1):
    """Training answers become out of vocabulary (no label) for every `every`-th batch."""
    step, calls = QAOpenEnded.train_step, []

    def train_step(self, model, batch, ctx=None):
        calls.append(1)
        if len(calls) % every == 0:
            batch = dict(batch, label=torch.full_like(batch["label"], -1))
        return step(self, model, batch, ctx)
    monkeypatch.setattr(QAOpenEnded, "train_step", train_step)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_batch_without_targets_updates_nothing(world, tmp_path, monkeypatch, precision):
    """The original's loss is NaN when every answer is out of vocabulary, and its loss scaler skips the step;
    here no update either (weights and optimiser state unchanged), counted in n_empty_steps_tr."""
    if precision == "fp16":
        monkeypatch.setattr(trainer, "resolve_precision", lambda cfg, device: "fp16")  # CPU autocast fp16
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", size_epoch=1, eval_splits=["val"])
    start = create_model(load_config(argv)).state_dict()
    torch.save(start, tmp_path / "start.pt")
    _answers_out_of_vocabulary(monkeypatch)
    log = run("qaoe", argv + ["--path_ckpt", str(tmp_path / "start.pt")])
    n_steps = 2  # 8 training videos, batch 4
    assert log["n_empty_steps_tr"] == [n_steps] and log["ls_tr"][-1] == 0.0
    end = torch.load(os.path.join(_only_run_dir(tmp_path / "out"), "ckpt_violet_tiny-qa_1.pt"), weights_only=True)
    assert all(torch.equal(end[k], start[k]) for k in start)
    steps = [json.loads(x) for x in open(os.path.join(_only_run_dir(tmp_path / "out"), "log_steps.jsonl"))]
    assert steps[-1]["step"] == n_steps  # the schedule advanced, as the original's


def test_only_the_batches_without_targets_are_skipped(world, tmp_path, monkeypatch):
    _answers_out_of_vocabulary(monkeypatch, every=2)
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=2, eval_splits=["val"]))
    assert log["n_empty_steps_tr"] == [1, 1] and all(np.isfinite(log["ls_tr"]))


# ----------------------------------------------------------------------------- captioning epoch 0
def test_captioning_evaluates_epoch_0_as_the_original(world, tmp_path):
    """The original's captioning script evaluates the starting weights before training; epoch 0 is logged
    but never becomes the best epoch (its weights are the starting weights, no epoch-0 file is written)."""
    yamls = dict(train_yaml="tiny-cap/train.yaml", val_yaml="tiny-cap/val.yaml", test_yaml="tiny-cap/test.yaml")
    log = run("captioning", tiny_argv(world, tmp_path, "tiny-cap", "captioning", size_epoch=1, max_gen_length=8,
                                      caption_meteor=False, **yamls))
    assert log["epoch"] == [0, 1] and len(log["CIDEr_vl"]) == 2
    run_dir = _only_run_dir(tmp_path)
    assert os.path.exists(os.path.join(run_dir, "caption_predictions", "ep0_pred.tiny-cap.val.max8.tsv"))
    assert json.load(open(os.path.join(run_dir, "best.json")))[""]["epoch"] == 1
    assert not os.path.exists(os.path.join(run_dir, "ckpt_violet_tiny-cap_0.pt"))


def test_other_families_evaluate_epoch_0_only_from_a_checkpoint(world, tmp_path):
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=1, max_steps=1))
    assert log["epoch"] == [1]


# ----------------------------------------------------------------------------- median rank
def test_median_rank_also_as_the_original_reports_it():
    m = retrieval_metrics([1, 2, 4, 1])
    assert m["median_rank"] == 1.5 and m["median_rank_int"] == 1  # int(np.median(ranks))
    assert retrieval_metrics([3, 4, 9])["median_rank_int"] == 4
    assert isinstance(retrieval_metrics([2, 3], prefix="v2t_")["v2t_median_rank_int"], int)


# ----------------------------------------------------------------------------- keys a family does not read
@pytest.mark.parametrize("task,type_,keys,warned", [
    ("tiny-qa", "qaoe", {"size_vocab": 1500}, ["size_vocab"]),  # the MLM head: the original forced it to -1
    ("tiny-retrieval", "retrieval", {"temp": 0.05}, ["temp"]),  # MLM retrieval: true/false at the [MASK]
    ("tiny-qa", "qaoe", {"p_mask": 0.3, "max_gen_length": 8}, ["p_mask", "max_gen_length"]),
    ("tiny-qamc", "qamc", {"size_txt": 40, "size_test": 100}, ["size_test"]),
    ("tiny-qa", "qaoe", {"size_vocab": 5, "head": "task_specific"}, []),  # read by the baseline head
    ("tiny-retrieval", "retrieval", {"temp": 0.05, "head": "task_specific"}, []),
])
def test_keys_a_family_does_not_read_are_said_once(world, tmp_path, task, type_, keys, warned):
    tok = load_tokenizer(write_tiny_vocab(world)[0])
    if task == "tiny-qa" and keys.get("head") == "task_specific":
        from tiny import write_qa_classes
        task = write_qa_classes(world)
    cfg = load_config(tiny_argv(world, tmp_path, task, type_, **keys))
    with lavender_log() as records:
        build_task(type_, cfg, tok)
    msgs = [r.getMessage() for r in records if r.levelname == "WARNING" and "has no effect for" in r.getMessage()]
    assert sorted(m.split(" = ")[0] for m in msgs) == sorted(warned), msgs
    for key in warned:
        assert any(f"{key} = {keys[key]!r} has no effect for {type_}" in m and FAMILY_KEYS[key] in m for m in msgs)


def test_family_keys_in_a_multi_task_config(world, tmp_path):
    """Per entry, for that entry's family; globally, only when no task reads the key."""
    entries = [{"type": "qaoe", "task": "tiny-qa", "size_vocab": 1000},
               {"type": "retrieval", "task": "tiny-retrieval"}]
    tok = load_tokenizer(write_tiny_vocab(world)[0])
    cfg = load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=entries, temp=0.05,
                                max_gen_length=8))
    with lavender_log() as records:
        build_task("multi-task", cfg, tok)
    msgs = [r.getMessage() for r in records if r.levelname == "WARNING" and "has no effect for" in r.getMessage()]
    assert len(msgs) == 3, msgs
    assert any("datasets[0]: size_vocab = 1000 has no effect for qaoe" in m for m in msgs)
    assert any("temp = 0.05 has no effect for any of its tasks" in m for m in msgs)
    assert any("max_gen_length = 8 has no effect for any of its tasks" in m for m in msgs)


def test_family_keys_are_declared_with_their_readers():
    """Every family key names what it applies to, and some registered family reads it (Task.reads)."""
    from lavender.tasks.registry import families
    reads = set()
    for cls in families().values():
        for sub in [cls] + cls.__subclasses__() + [s for c in cls.__subclasses__() for s in c.__subclasses__()]:
            if sub.family != "multi-task":
                reads |= set(sub.reads)
    assert set(FAMILY_KEYS) <= reads
    assert {"size_vocab", "temp", "p_mask", "max_gen_length"} <= set(FAMILY_KEYS)
