"""Runs: `--resume latest` continues the newest-started training run of the task (not the folder touched
last, never an evaluation folder); a start that fails before its first step leaves no folder; a write with
no room is one error naming the file and the free space, the files before it intact; temporary files of
interrupted writes are removed when a run starts or resumes (issue 22, 4-5)."""
import json
import os
import resource
import subprocess
import sys

import pytest

from lavender.paths import REPO_ROOT
from tiny import make_color_world, tiny_argv

QA = "main_qaoe_mlm.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=8,
                            tasks={"tiny-qa": "qa", "tiny-ret": "retrieval"})


def _runs(out, prefix="_tiny-qa_"):
    return sorted(os.path.join(out, d) for d in os.listdir(out) if d.startswith(prefix)) if os.path.isdir(out) else []


def _argv(world, out, task="tiny-qa", family="qaoe", **kw):
    return tiny_argv(world, out, task, family, **dict(dict(size_epoch=1, eval_splits=["val"]), **kw))


def _resumed(run_dir):
    return "resuming this run" in open(os.path.join(run_dir, "stdout.txt")).read()


def test_resume_latest_goes_by_start_not_by_the_folder_touched_last(world, tmp_path, script):
    argv = _argv(world, tmp_path)
    assert script(QA, argv)[0] == 0 and script(QA, argv)[0] == 0
    older, newer = _runs(tmp_path)  # started in that order (names: start time, then _1 within a second)
    with open(os.path.join(older, "curves.png"), "wb") as f:  # e.g. plot_log.py OLDER --output OLDER/curves.png
        f.write(b"png")
    os.utime(older, (os.path.getmtime(newer) + 60,) * 2)
    rc, _, err = script(QA, argv + ["--resume", "latest"])
    assert rc == 0, err[-2000:]
    assert _resumed(newer) and not _resumed(older)


def test_an_evaluation_folder_does_not_block_resume(world, tmp_path, script):
    argv = _argv(world, tmp_path, "tiny-ret", "retrieval")
    assert script("main_retrieval_tsv.py", argv)[0] == 0
    (trained,) = _runs(tmp_path, "_tiny-ret_")
    ckpt = os.path.join(trained, "ckpt_violet_tiny-ret_1.pt")
    rc, _, err = script("eval_retrieval_tsv.py", argv + ["--path_ckpt", ckpt])
    assert rc == 0 and len(_runs(tmp_path, "_tiny-ret_")) == 2, err[-2000:]  # + _tiny-ret_eval_*
    rc, _, err = script("main_retrieval_tsv.py", argv + ["--resume", "latest"])
    assert rc == 0 and _resumed(trained), err[-2000:]


def _corrupt_frames(tsv):
    """Every frame of every row undecodable, at the same length (the indexes stay valid)."""
    with open(tsv) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    with open(tsv, "w") as f:
        f.writelines("\t".join([r[0]] + [x[:4] + "A" * (len(x) - 4) for x in r[1:]]) + "\n" for r in rows)


def test_a_start_that_fails_before_its_first_step_leaves_no_folder(world, tmp_path, script, refused):
    argv = _argv(world, tmp_path)
    assert script(QA, argv)[0] == 0
    (done,) = _runs(tmp_path)
    refused(*script(QA, argv + ["--lr", "nan"])[::2], "lr")
    tsv = os.path.join(world, "img_tiny.tsv")
    good = open(tsv).read()
    try:
        _corrupt_frames(tsv)
        refused(*script(QA, argv)[::2], "img_tiny.tsv, key 'video")  # in the first training batch
    finally:
        with open(tsv, "w") as f:
            f.write(good)
    assert _runs(tmp_path) == [done]  # neither start left a folder
    rc, _, err = script(QA, argv + ["--resume", "latest"])
    assert rc == 0 and _resumed(done), err[-2000:]


def _limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_write_without_room_is_one_error_naming_the_file(world, tmp_path):
    argv = _argv(world, tmp_path)  # the checkpoint (~1.7 MB) does not fit a 1 MB file-size limit
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, LAVENDER_DEBUG="0", HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, os.path.join(REPO_ROOT, QA)] + argv, cwd=tmp_path, capture_output=True,
                       text=True, timeout=600, env=env, preexec_fn=_limit_file_size(2**20))
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(err) == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "cannot write" in err[0] and "ckpt_violet_tiny-qa_1.pt: File too large" in err[0] and "free on" in err[0]
    (run_dir,) = _runs(tmp_path)
    assert json.load(open(os.path.join(run_dir, "log.json")))["epoch"] == [1]  # written before: intact
    assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp") or f.startswith("ckpt")]


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporary_files_of_interrupted_writes_are_removed(world, tmp_path, script):
    import socket
    argv = _argv(world, tmp_path)
    assert script(QA, argv)[0] == 0
    (run_dir,) = _runs(tmp_path)
    host = socket.gethostname()
    dead = os.path.join(run_dir, f".resume.pt.{_dead_pid()}@{host}.x1y2z3.tmp")   # a kill during its write
    live = os.path.join(run_dir, f".log.json.{os.getpid()}@{host}.a1b2c3.tmp")    # a writer still at work
    for path in (dead, live):
        with open(path, "wb") as f:
            f.write(b"\0" * 1000)
    assert script(QA, argv)[0] == 0  # a new run of the task removes the dead writer's file only
    assert not os.path.exists(dead) and os.path.exists(live)
    old = os.path.join(run_dir, "ckpt_violet_tiny-qa_best.pt.tmp")  # an older kind of temporary file
    open(old, "wb").close()
    rc, _, err = script(QA, argv + ["--resume", run_dir])  # the resumed run's folder: every temporary file
    assert rc == 0 and not os.path.exists(old) and not os.path.exists(live), err[-2000:]
