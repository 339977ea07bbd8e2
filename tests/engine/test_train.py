"""Engine: a killed run resumes to the same result; a 2-process gloo job runs; outputs are complete."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lavender.engine.run_files import RunFiles
from lavender.run import run
from lavender.paths import REPO_ROOT
from tiny import make_color_world, run_killed, tiny_argv


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=32)


def _final_weights(run_dir, task, epoch):
    return torch.load(os.path.join(run_dir, f"ckpt_violet_{task}_{epoch}.pt"), weights_only=True)


def _only_run_dir(out):
    dirs = [d for d in os.listdir(out) if d.startswith("_")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


def test_killed_run_resumes_to_the_same_result(world, tmp_path, monkeypatch):
    common = dict(size_epoch=2, size_batch=4, n_workers=0)
    full = run("qaoe", tiny_argv(world, tmp_path / "a", "tiny-qa", "qaoe", **common))
    full_dir = _only_run_dir(tmp_path / "a")
    assert {"args.json", "log.json", "resume.pt", "stdout.txt", "ckpt_violet_tiny-qa_1.pt",
            "predictions_val.json"} <= set(os.listdir(full_dir))

    argv = tiny_argv(world, tmp_path / "b", "tiny-qa", "qaoe", save_steps=1, **common)
    run_killed("qaoe", argv, monkeypatch, lambda st: st["epoch"] == 1 and st["loader"]["pos"] == 2)
    resumed = run("qaoe", argv + ["--resume", "latest"])

    assert resumed["ls_tr"] == pytest.approx(full["ls_tr"], abs=1e-6)
    assert resumed["ac_1_vl"] == full["ac_1_vl"]
    a, b = _final_weights(full_dir, "tiny-qa", 2), _final_weights(_only_run_dir(tmp_path / "b"), "tiny-qa", 2)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6


def test_two_process_gloo_job(world, tmp_path):
    argv = tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=1)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO_ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO_ROOT, "main_qaoe_mlm.py")] + argv
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    log = json.load(open(os.path.join(_only_run_dir(tmp_path), "log.json")))
    assert log["n_vl"] == [8] and log["n_ts"] == [8]   # every val/test question exactly once over 2 ranks
    assert "ls_tr" in log


def test_best_checkpoint_is_a_trained_epoch_even_if_zero_shot_was_better(world, tmp_path, monkeypatch):
    """A zero-shot epoch 0 (path_ckpt) better than every trained epoch: *_best.pt still exists and is the
    best trained epoch's file (best among trained epochs, as the original's argmax)."""
    from lavender.config import load_config
    from lavender.models.factory import create_model
    from lavender.tasks.qa_oe import QAOpenEnded
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", size_epoch=2, max_steps=0)
    torch.save(create_model(load_config(argv)).state_dict(), tmp_path / "zs.pt")
    vals = iter([0.9, 0.2, 0.4])  # epoch 0 (zero-shot), 1, 2
    summarize = QAOpenEnded.summarize

    def fake(self, records, split):
        m = summarize(self, records, split)
        if split == "val":
            m["ac_1"] = next(vals)
        return m
    monkeypatch.setattr(QAOpenEnded, "summarize", fake)
    log = run("qaoe", argv + ["--path_ckpt", str(tmp_path / "zs.pt")])
    assert log["epoch"] == [0, 1, 2] and log["ac_1_vl"] == [0.9, 0.2, 0.4]
    run_dir = _only_run_dir(tmp_path / "out")
    assert json.load(open(os.path.join(run_dir, "best.json")))[""]["epoch"] == 2
    best, at2 = _final_weights(run_dir, "tiny-qa", "best"), _final_weights(run_dir, "tiny-qa", 2)
    assert all(torch.equal(best[k], at2[k]) for k in at2)


def _nan_at_call(monkeypatch, n):
    """The QA task's training loss becomes NaN at its n-th call."""
    from lavender.tasks.qa_oe import QAOpenEnded
    step, calls = QAOpenEnded.train_step, []

    def train_step(self, model, batch, step_ctx=None):
        loss, stats = step(self, model, batch, step_ctx)
        calls.append(1)
        return (loss * float("nan") if len(calls) == n else loss), stats
    monkeypatch.setattr(QAOpenEnded, "train_step", train_step)


def test_non_finite_loss_in_fp32_stops_with_where_after_writing_resume(world, tmp_path, monkeypatch):
    _nan_at_call(monkeypatch, 2)
    with pytest.raises(FloatingPointError) as err:
        run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=1))
    msg = str(err.value)
    assert "loss is nan at epoch 1, step 1" in msg and "batch 2 of the epoch" in msg
    assert "videos ['video" in msg and "--resume latest" in msg
    state = RunFiles.load_resume(os.path.join(_only_run_dir(tmp_path), "resume.pt"))
    assert state["global_step"] == 1 and state["loader"]["pos"] == 2


def test_non_finite_loss_in_fp16_is_a_skipped_step(world, tmp_path, monkeypatch):
    """As the original's fp16 loss scaling: the step is skipped and training goes on; the log counts it."""
    from lavender.engine import trainer
    monkeypatch.setattr(trainer, "resolve_precision", lambda cfg, device: "fp16")  # CPU autocast fp16
    _nan_at_call(monkeypatch, 2)
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=1, logging_steps=1))
    assert log["n_skipped_steps_tr"][-1] >= 1 and np.isfinite(log["ls_tr"][-1])
    steps = [json.loads(line) for line in open(os.path.join(_only_run_dir(tmp_path), "log_steps.jsonl"))]
    # the NaN step is skipped (the first steps may be too, while the loss scale settles)
    assert steps[1]["n_skipped_steps"] == steps[0]["n_skipped_steps"] + 1
    assert log["n_skipped_steps_tr"][-1] == steps[-1]["n_skipped_steps"]


def test_what_reading_the_config_said_is_in_the_runs_stdout(world, tmp_path):
    """Messages logged before the run folder exists (config warnings) reach its stdout.txt, and a
    second run in the same process does not write into the first run's file."""
    run("qaoe", tiny_argv(world, tmp_path / "a", "tiny-qa", "qaoe", size_epoch=0, size_txt_pre=7))
    run("qaoe", tiny_argv(world, tmp_path / "b", "tiny-qa", "qaoe", size_epoch=0))
    first = open(os.path.join(_only_run_dir(tmp_path / "a"), "stdout.txt")).read()
    second = open(os.path.join(_only_run_dir(tmp_path / "b"), "stdout.txt")).read()
    assert "size_txt_pre = 7 has no effect" in first and "size_txt_pre" not in second
    assert first.count("output: ") == 1
