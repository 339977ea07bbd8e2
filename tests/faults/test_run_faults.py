"""Faults around a run: resuming the wrong run, colliding run folders, empty or incomplete splits, bad
settings and unwritable outputs — each one clear error before any work, or a counted skip."""
import json
import os
import subprocess
import sys

import pytest
import torch

from lavender.errors import ConfigError, DataError
from lavender.data.tsv import write_tsv
from lavender.engine import run_dir as R
from lavender.engine.run_files import RunFiles
from lavender.engine.dist import DistInfo
from lavender.engine.logs import StepLog
from lavender.run import run
from lavender.paths import REPO_ROOT
from tiny import make_color_world, tiny_argv


def _argv(world, out, **kw):
    return tiny_argv(world, out, "tiny-qa", "qaoe", **dict(dict(size_epoch=1, eval_splits=["val"]), **kw))


def _runs(out):
    return sorted(d for d in os.listdir(out) if d.startswith("_tiny-qa_"))


def test_resume_latest_never_continues_an_older_finished_run(world, tmp_path, monkeypatch):
    run("qaoe", _argv(world, tmp_path))  # a finished run with a resume.pt

    def killed(self, state):
        raise KeyboardInterrupt("killed before the first save")
    monkeypatch.setattr(RunFiles, "save_resume", killed)
    with pytest.raises(KeyboardInterrupt):
        run("qaoe", _argv(world, tmp_path, lr=3e-3))
    monkeypatch.undo()
    older = os.path.join(tmp_path, _runs(tmp_path)[0])
    args_before = open(os.path.join(older, "args.json")).read()
    with pytest.raises(ConfigError, match="wrote no resume state .* --resume " + older):
        run("qaoe", _argv(world, tmp_path, lr=3e-3) + ["--resume", "latest"])
    # naming the older run explicitly: its settings differ on a key that changes training
    with pytest.raises(ConfigError, match=r"other settings for lr"):
        run("qaoe", _argv(world, tmp_path, lr=3e-3) + ["--resume", older])
    assert open(os.path.join(older, "args.json")).read() == args_before  # never overwritten


def test_resume_keeps_args_json_and_the_step_log_has_no_duplicates(world, tmp_path, monkeypatch):
    argv = _argv(world, tmp_path, size_epoch=2, size_batch=2, save_steps=2, logging_steps=1)
    append = StepLog.append

    def killed(self, record):  # step 3 is logged, then the run dies before its next save
        append(self, record)
        if record["step"] == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr(StepLog, "append", killed)
    with pytest.raises(KeyboardInterrupt):
        run("qaoe", argv)
    monkeypatch.undo()
    d = os.path.join(tmp_path, _runs(tmp_path)[0])
    args_before = open(os.path.join(d, "args.json")).read()
    run("qaoe", argv + ["--resume", "latest", "--n_workers", "0"])  # resumes after step 2, logs step 3 again
    steps = [json.loads(line)["step"] for line in open(os.path.join(d, "log_steps.jsonl"))]
    assert steps == [1, 2, 3, 4]
    assert open(os.path.join(d, "args.json")).read() == args_before
    assert "resuming this run" in open(os.path.join(d, "stdout.txt")).read()


def test_two_runs_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    from lavender.config import load_config
    cfg = load_config(["--task", "t", "--path_output", str(tmp_path)])
    monkeypatch.setattr(R.time, "strftime", lambda fmt: "20260101000000")
    a, b = R.prepare_run_dir(cfg, DistInfo()), R.prepare_run_dir(cfg, DistInfo())
    assert a != b and b == a + "_1" and os.path.isfile(os.path.join(b, "args.json"))


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(val=[]), r"\['val'\] has no items: nothing to evaluate"),
    (lambda d: d.update(train=[]), r"\['train'\] has no items: nothing to train on"),
    (lambda d: d.pop("val"), r"has no split 'val' to evaluate"),
    (lambda d: d["train"][1].pop("question"), r"\['train'\] item 1 \(video 'video\d+'\) lacks \['question'\]"),
])
def test_bad_splits_fail_at_start_up(world, tmp_path, monkeypatch, edit, match):
    d = json.load(open(os.path.join(world, "txt_tiny-qa.json")))
    edit(d)
    json.dump(d, open(tmp_path / "txt_tiny-bad.json", "w"))
    for f in ("img_tiny.tsv", "img_tiny.lineidx", "img_tiny.id2lineidx.pkl"):
        os.symlink(os.path.join(world, f), tmp_path / f)
    built = []
    monkeypatch.setattr("lavender.models.factory.build_model", lambda *a, **k: built.append(1))
    with pytest.raises(DataError, match=match):
        run("qaoe", tiny_argv(str(tmp_path), tmp_path / "out", "tiny-bad", "qaoe"))
    assert not built  # before the model is even built


def test_a_missing_test_split_is_an_error_only_when_asked_for(world, tmp_path):
    log = run("qaoe", tiny_argv(world, tmp_path, "tiny-qa", "qaoe", size_epoch=0, eval_splits=["val", "test"]))
    assert "ac_1_ts" in log
    d = json.load(open(os.path.join(world, "txt_tiny-qa.json")))
    d.pop("test")
    json.dump(d, open(tmp_path / "txt_tiny-notest.json", "w"))
    for f in ("img_tiny.tsv", "img_tiny.lineidx", "img_tiny.id2lineidx.pkl"):
        os.symlink(os.path.join(world, f), tmp_path / f)
    with pytest.raises(DataError, match="no split 'test'"):
        run("qaoe", tiny_argv(str(tmp_path), tmp_path / "o1", "tiny-notest", "qaoe", size_epoch=0,
                              eval_splits=["val", "test"]))
    argv = tiny_argv(str(tmp_path), tmp_path / "o2", "tiny-notest", "qaoe", size_epoch=0)  # default eval_splits
    assert "ac_1_vl" in run("qaoe", argv)


def test_pretraining_row_without_caption(tmp_path):
    from lavender.tasks.pretrain import Pretrain
    from lavender.config import load_config
    from lavender.tokenizer import load_tokenizer
    from tiny import write_tiny_vocab
    world = make_color_world(str(tmp_path / "w"), n_videos=4, dataset="all", tasks={})
    from lavender.data.tsv import TSVFile
    rows = list(TSVFile(os.path.join(world, "img_all.tsv")))
    write_tsv(os.path.join(world, "pre_train_0.tsv"), rows)
    write_tsv(os.path.join(world, "pre_val.tsv"), rows[:1])
    json.dump({"train": {r[0]: ["a shape"] for r in rows[:3]}, "val": {rows[0][0]: ["a shape"]}},
              open(os.path.join(world, "txt_pre.json"), "w"))
    tok = load_tokenizer(write_tiny_vocab(world)[0])
    argv = tiny_argv(world, tmp_path, "pre", "pretrain", dataset=["pre"], size_part=1)
    task = Pretrain(load_config(argv), tok)
    with pytest.raises(DataError, match=r"txt_pre.json\['train'\] has no caption for video 'video3' \(row 3 of "):
        task.datasets["train"][3]
    task = Pretrain(load_config(argv + ["--skip_bad", "true"]), tok)
    assert task.datasets["train"][3] is None and task.stores()[0].n_skipped == 1


def _script(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, LAVENDER_DEBUG="0", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "main_qaoe_mlm.py")] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def test_main_script_errors_are_one_line(world, tmp_path):
    with open(tmp_path / "list.json", "w") as f:
        json.dump([{"task": "x"}], f)
    cases = [(["--config", str(tmp_path / "list.json")], "a config is a JSON object"),
             (_argv(world, tmp_path / "a", size_frame=0), "size_frame must be >= 1"),
             (_argv(world, tmp_path / "b") + ["--size_epoch", "-1"], "size_epoch must be >= 0"),
             (_argv(world, tmp_path / "c") + ["--path_ckpt", str(tmp_path / "list.json")], "not a readable PyTorch")]
    for args, msg in cases:
        p = _script(args, tmp_path)
        assert p.returncode == 2 and p.stdout == "", (args, p.stderr[-2000:])
        err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert len(err) == 1 and msg in err[0] and "Traceback" not in p.stderr, p.stderr[-2000:]


def test_unwritable_output_is_refused_before_work(world, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        with pytest.raises(ConfigError, match="not writable"):
            run("qaoe", _argv(world, ro))
    finally:
        os.chmod(ro, 0o700)


def test_worker_data_error_is_reported_once(tmp_path):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa"})
    rows = [r.split("\t") for r in open(os.path.join(world, "img_tiny.tsv")).read().splitlines()]
    rows[4][1] = "/9j/" + "A" * 40  # the first frame of a val video does not decode
    write_tsv(os.path.join(world, "img_tiny.tsv"), rows, id2lineidx_path=os.path.join(world, "img_tiny.id2lineidx.pkl"))
    p = _script(_argv(world, tmp_path, n_workers=1, size_epoch=0), tmp_path)
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "img_tiny.tsv, key 'video4', frame 0" in err[0] and "Traceback" not in p.stderr


def test_log_json_is_standard_json_with_nan(tmp_path):
    from lavender.engine.evaluation import EpochLog
    log = EpochLog({"": "ac"}, str(tmp_path))
    log.add(1, {"ls_tr": float("nan"), "ac_vl": 0.5})
    text = open(tmp_path / "log.json").read()
    assert "NaN" not in text and json.loads(text)["ls_tr"] == [None]


def test_resume_file_with_code_is_refused(tmp_path, marker):
    from tiny import Payload
    torch.save({"model": Payload(marker)}, tmp_path / "resume.pt")
    with pytest.raises(DataError, match="refused to load"):
        RunFiles.load_resume(tmp_path / "resume.pt")
