"""`--deterministic true`: deterministic kernels for the run (and back to what they were after it); two
runs of the same command give the same log.json and weights, with or without DataLoader workers
(issue 22, 9)."""
import json
import os

import pytest
import torch

from tiny import make_color_world, tiny_argv


def _run(script, world, out, *extra):
    argv = tiny_argv(world, out, "tiny-qa", "qaoe", size_epoch=2, size_batch=2, eval_splits=["val"]) + list(extra)
    rc, _, err = script("main_qaoe_mlm.py", argv + ["--deterministic", "true"])
    assert rc == 0, err[-3000:]
    (run_dir,) = [os.path.join(out, d) for d in os.listdir(out) if d.startswith("_")]
    return run_dir


def test_two_deterministic_runs_are_identical(tmp_path, script):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa"})
    before = torch.are_deterministic_algorithms_enabled()
    a = _run(script, world, tmp_path / "a")
    b = _run(script, world, tmp_path / "b", "--n_workers", "1")
    assert torch.are_deterministic_algorithms_enabled() == before  # the switch is the run's, not the process's
    assert "deterministic algorithms on" in open(os.path.join(a, "stdout.txt")).read()
    log_a, log_b = (json.load(open(os.path.join(d, "log.json"))) for d in (a, b))
    assert log_a == log_b and len(log_a["epoch"]) == 2
    for epoch in (1, 2):
        wa, wb = (torch.load(os.path.join(d, f"ckpt_violet_tiny-qa_{epoch}.pt")) for d in (a, b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_operation_without_a_deterministic_kernel_is_one_error():
    from lavender.engine.rng import deterministic_mode
    from lavender.errors import ConfigError
    with pytest.raises(ConfigError, match=r"deterministic true: index_add_cuda_ does not have a deterministic"):
        with deterministic_mode(True):
            assert torch.are_deterministic_algorithms_enabled()
            raise RuntimeError("index_add_cuda_ does not have a deterministic implementation, but you set "
                               "'torch.use_deterministic_algorithms(True)'.\nmore text")
    assert not torch.are_deterministic_algorithms_enabled()
