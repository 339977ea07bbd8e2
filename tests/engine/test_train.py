"""Engine: a killed run resumes to the same result; a 2-process gloo job runs; outputs are complete."""
import json
import os
import subprocess
import sys

import pytest
import torch

from lavender.engine.run import run
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
