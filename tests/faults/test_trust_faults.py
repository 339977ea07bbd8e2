"""Full unpickling (which runs code from a crafted file) is opted into only on the current command line:
`"trust_checkpoint": true` in a shared config, a multi-task entry or a run's args.json never lets a crafted
checkpoint or resume.pt run code, through any entry point that loads one (issue 22, 1)."""
import json
import os

import pytest
import torch

from tiny import Payload, make_color_world, tiny_argv

QA = "main_qaoe_mlm.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=8,
                            tasks={"tiny-qa": "qa", "tiny-ret": "retrieval"})


def crafted(path, marker):
    torch.save({"state_dict": {}, "x": Payload(marker)}, path)
    return str(path)


def _runs(out):
    return [d for d in os.listdir(out) if d.startswith("_")] if os.path.isdir(out) else []


def test_a_shared_config_cannot_trust_a_checkpoint(world, tmp_path, marker, script, refused):
    ckpt = crafted(tmp_path / "ckpt.pt", marker)
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", trust_checkpoint=True, path_ckpt=ckpt)
    rc, out, err = script(QA, argv)
    refused(rc, err, "ckpt.pt", "refused", "--trust_checkpoint true")
    assert "trust_checkpoint = True ignored" in err and not _runs(tmp_path / "out")


def test_the_command_line_does_trust_it(world, tmp_path, script):
    ran = tmp_path / "RAN_WITH_CONSENT"  # the control: the crafted file does run code when trusted
    ckpt = crafted(tmp_path / "ckpt.pt", ran)
    rc, _, err = script(QA, tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", path_ckpt=ckpt)
                        + ["--trust_checkpoint", "true"])
    assert ran.exists() and rc == 2  # and then it holds no weights: one error


def test_a_multi_task_entry_cannot_trust_a_checkpoint(world, tmp_path, marker, script, refused):
    ckpt = crafted(tmp_path / "ckpt.pt", marker)
    entry = {"type": "qaoe", "task": "tiny-qa", "trust_checkpoint": True}
    argv = tiny_argv(world, tmp_path / "out", "tiny-multi", "multi-task", path_ckpt=ckpt, datasets=[entry])
    rc, _, err = script("main_multi_task_mlm.py", argv)
    refused(rc, err, "trust_checkpoint")
    assert not _runs(tmp_path / "out")


def test_retrieval_evaluation_cannot_be_told_to_trust(world, tmp_path, marker, script, refused):
    ckpt = crafted(tmp_path / "ckpt.pt", marker)
    argv = tiny_argv(world, tmp_path / "out", "tiny-ret", "retrieval", trust_checkpoint=True, path_ckpt=ckpt)
    rc, _, err = script("eval_retrieval_tsv.py", argv)
    refused(rc, err, "ckpt.pt", "refused")


def test_predict_ignores_trust_in_the_run_folder(world, tmp_path, marker, script, refused):
    run_dir = tmp_path / "_tiny-qa_20260101000000"
    run_dir.mkdir()
    cfg = json.load(open(tiny_argv(world, tmp_path, "tiny-qa", "qaoe")[1]))
    json.dump(dict(cfg, trust_checkpoint=True), open(run_dir / "args.json", "w"))
    ckpt = crafted(run_dir / "ckpt_violet_tiny-qa_1.pt", marker)
    rc, _, err = script("_tools/predict.py", ["--path_ckpt", ckpt, "--tsv", os.path.join(world, "img_tiny.tsv"),
                                              "--key", "video0", "--question", "what color is the shape?"])
    refused(rc, err, "ckpt_violet_tiny-qa_1.pt", "refused")


def test_resume_ignores_trust_in_the_run_folder(world, tmp_path, marker, script, refused):
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe", size_epoch=1, eval_splits=["val"])
    assert script(QA, argv)[0] == 0
    (run_dir,) = [tmp_path / "out" / d for d in _runs(tmp_path / "out")]
    saved = json.load(open(run_dir / "args.json"))
    assert "trust_checkpoint" not in saved  # never written
    json.dump(dict(saved, trust_checkpoint=True), open(run_dir / "args.json", "w"))
    crafted(run_dir / "resume.pt", marker)
    rc, _, err = script(QA, argv + ["--resume", "latest"])
    refused(rc, err, "resume.pt", "refused")
