"""What a run leaves on disk: by default only the best epoch's weights (no resume.pt once finished), the last
N epochs on request, safetensors; the learning-rate schedule ends at max_steps; TensorBoard event files hold
the logged values."""
import glob
import json
import os

import pytest
import torch

from lavender.config import RESUME_FREE_KEYS
from lavender.engine.optim import LR_FLOOR
from lavender.engine.tensorboard import read_events
from lavender.models.weights import load_torch_file
from lavender.run import run
from tiny import make_color_world, tiny_argv


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


def _run(world, out, **kw):
    log = run("qaoe", tiny_argv(world, out, "tiny-qa", "qaoe", **kw))
    run_dir, = glob.glob(os.path.join(str(out), "_tiny-qa_*"))
    return log, run_dir


def _files(run_dir, ext="pt"):
    return sorted(f for f in os.listdir(run_dir) if f.endswith("." + ext))


def test_default_retention_keeps_the_best_weights_only(world, tmp_path):
    from lavender.config import DEFAULTS
    assert (DEFAULTS["keep_best"], DEFAULTS["keep_last"], DEFAULTS["keep_resume"]) == (True, 0, False)
    common = dict(size_epoch=3, lr=3e-3, logging_steps=1)
    _, lean = _run(world, tmp_path / "lean", **common, keep_last=0, keep_resume=False)  # the declared defaults
    _, full = _run(world, tmp_path / "full", **common)  # tiny_argv keeps every file, as the original
    assert _files(lean) == ["ckpt_violet_tiny-qa_best.pt"]
    assert _files(full) == ["ckpt_violet_tiny-qa_1.pt", "ckpt_violet_tiny-qa_2.pt", "ckpt_violet_tiny-qa_3.pt",
                            "ckpt_violet_tiny-qa_best.pt", "resume.pt"]
    best_epoch = json.load(open(os.path.join(lean, "best.json")))[""]["epoch"]
    a = load_torch_file(os.path.join(lean, "ckpt_violet_tiny-qa_best.pt"))
    b = load_torch_file(os.path.join(full, f"ckpt_violet_tiny-qa_{best_epoch}.pt"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same run, the same best weights
    # the best file is a hard link to its epoch file: no second copy on disk
    assert os.stat(os.path.join(full, "ckpt_violet_tiny-qa_best.pt")).st_ino == \
        os.stat(os.path.join(full, f"ckpt_violet_tiny-qa_{best_epoch}.pt")).st_ino


def test_keep_last_n_and_runs_without_a_best(world, tmp_path):
    _, d = _run(world, tmp_path / "a", size_epoch=3, keep_last=2, keep_resume=False)
    assert [f for f in _files(d) if not f.endswith("best.pt")] == ["ckpt_violet_tiny-qa_2.pt", "ckpt_violet_tiny-qa_3.pt"]
    _, d = _run(world, tmp_path / "b", size_epoch=2, keep_last=0, keep_resume=False, eval_splits=["test"])
    assert _files(d) == ["ckpt_violet_tiny-qa_2.pt"]  # no val metric, no best: the last epoch stays
    _, d = _run(world, tmp_path / "c", size_epoch=2, keep_last=0, keep_best=False, keep_resume=False)
    assert _files(d) == ["ckpt_violet_tiny-qa_2.pt"]


def test_safetensors_weights_load_like_the_pt_ones(world, tmp_path):
    from lavender.inference import Predictor
    _, d = _run(world, tmp_path / "st", size_epoch=1, keep_last=0, keep_resume=False, ckpt_format="safetensors")
    _, p = _run(world, tmp_path / "pt", size_epoch=1, keep_last=0, keep_resume=False)
    assert _files(d, "safetensors") == ["ckpt_violet_tiny-qa_best.safetensors"] and not _files(d)
    a = Predictor.from_checkpoint(os.path.join(d, "ckpt_violet_tiny-qa_best.safetensors")).model.state_dict()
    b = load_torch_file(os.path.join(p, "ckpt_violet_tiny-qa_best.pt"))
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_the_schedule_ends_at_max_steps_and_tensorboard_holds_the_log(world, tmp_path):
    log, d = _run(world, tmp_path / "s", size_epoch=5, size_batch=2, max_steps=10, logging_steps=1, lr=1e-3,
                  max_grad_norm=1.0)
    steps = [json.loads(line) for line in open(os.path.join(d, "log_steps.jsonl"))]
    lrs = [max(s["lr"]) for s in steps]
    assert [s["step"] for s in steps] == list(range(1, 11))
    assert lrs[0] == pytest.approx(1e-3) and lrs.index(max(lrs)) == 0  # warm-up: 10% of 10 steps = 1 step
    # decayed to the original's absolute floor at step 10, falling all the way
    assert lrs[-1] == pytest.approx(LR_FLOOR) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert "max_steps" not in RESUME_FREE_KEYS  # it changes the schedule: a resume must keep it
    events = read_events(glob.glob(os.path.join(d, "events.out.tfevents.*"))[0])
    losses = {s: v for s, tag, v in events if tag == "train/loss"}
    # each record carries its step's gradient norm before clipping (max_grad_norm > 0), in the events too
    norms = {s: v for s, tag, v in events if tag == "train/grad_norm"}
    assert all(s["grad_norm"] > 0 for s in steps) and norms == pytest.approx({s["step"]: s["grad_norm"] for s in steps})
    assert losses == pytest.approx({s["step"]: s["loss"] for s in steps}, rel=1e-6)
    val = [(s, v) for s, tag, v in events if tag == "val/ac_1"]
    assert [v for _, v in val] == pytest.approx(log["ac_1_vl"]) and val[-1][0] == 10
