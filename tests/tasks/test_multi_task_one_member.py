"""A multi-task run with one member is the single-task run of that config: the same loss and learning rate at
every step, the same metrics after every epoch, the same weights at the end (open-ended QA and captioning)."""
import json
import os

import pytest
import torch

from lavender.run import run
from tiny import make_color_world, tiny_argv

CAP = {"train_yaml": "tiny-cap/train.yaml", "val_yaml": "tiny-cap/val.yaml", "test_yaml": "tiny-cap/test.yaml",
       "max_gen_length": 8, "caption_meteor": False, "eval_splits": ["val"]}  # one Java PTB run per epoch
CASES = {"qaoe": ("tiny-qa", {}), "captioning": ("tiny-cap", CAP)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


def _run_dir(out, task):
    dirs = [d for d in os.listdir(out) if d.startswith(f"_{task}_")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


def _steps(run_dir):
    with open(os.path.join(run_dir, "log_steps.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("family", sorted(CASES))
def test_one_member_multi_task_run_is_the_single_task_run(world, tmp_path, family):
    name, keys = CASES[family]
    common = dict(size_epoch=3, logging_steps=1, seed=5, n_workers=0, max_grad_norm=1.0)
    single = run(family, tiny_argv(world, tmp_path / "single", name, family, **common, **keys))
    multi = run("multi-task", tiny_argv(world, tmp_path / "multi", "tiny-multi", "multi-task",
                                        datasets=[{"type": family, "task": name, **keys}], **common))
    a, b = _run_dir(tmp_path / "single", name), _run_dir(tmp_path / "multi", "tiny-multi")

    sa, sb = _steps(a), _steps(b)
    assert len(sa) == len(sb) >= 6
    for x, y in zip(sa, sb):
        assert (x["epoch"], x["step"]) == (y["epoch"], y["step"])
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6, abs=1e-7), (x, y)
        assert x["lr"] == pytest.approx(y["lr"], rel=1e-9)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-5)
        assert y["task"] == name and "task" not in x  # the member each multi-task step served

    # A multi-task run, like the original's, also evaluates the starting weights (epoch 0); so does captioning.
    assert multi["epoch"] == [0, 1, 2, 3] and single["epoch"] == ([0, 1, 2, 3] if family == "captioning" else [1, 2, 3])
    skip = len(multi["epoch"]) - len(single["epoch"])
    compared = 0
    for key, values in single.items():
        if key.endswith(("_vl", "_ts")):
            assert multi[f"{name}_{key}"][skip:] == pytest.approx(values, rel=1e-6, abs=1e-7), key
            compared += 1
    assert compared >= 4
    assert multi["ls_tr"] == pytest.approx(single["ls_tr"], rel=1e-6)

    wa = torch.load(os.path.join(a, f"ckpt_violet_{name}_3.pt"), weights_only=True)
    wb = torch.load(os.path.join(b, "ckpt_violet_tiny-multi_3.pt"), weights_only=True)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])][:5]
