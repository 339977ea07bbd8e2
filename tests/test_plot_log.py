"""_tools/plot_log.py: one PNG with an axis per metric for overlaid runs; bad run folders fail in one line."""
import json
import subprocess
import sys

from lavender.run import main_guard
from lavender.paths import REPO_ROOT
from tool_loader import load_tool

TOOL = f"{REPO_ROOT}/_tools/plot_log.py"


def fake_run(path, metrics, n_steps=6, lr_groups=4):
    """A run folder: log_steps.jsonl (loss, lr per group, max_mem_gb) and log.json (epochs 0..2)."""
    path.mkdir(parents=True)
    with open(path / "log_steps.jsonl", "w") as f:
        for s in range(1, n_steps + 1):
            lr = [1e-4 * s * (4 if g % 2 == 0 else 1) for g in range(lr_groups)]  # two distinct schedules
            f.write(json.dumps({"epoch": 1 + s // 4, "step": s * 10, "loss": 5.0 / s, "lr": lr,
                                "max_mem_gb": 0.5}) + "\n")
    log = {"epoch": [0, 1, 2], "ls_tr": [None, 2.0, 1.5]}
    for m in metrics:
        log.update({f"{m}_vl": [0.1, 0.3, 0.4], f"{m}_ts": [0.1, 0.25, None]})
    (path / "log.json").write_text(json.dumps(log))
    return path


def test_plot_two_runs_one_axis_per_metric(tmp_path):
    a = fake_run(tmp_path / "run_a", ["ac_1", "ac_5"])
    b = fake_run(tmp_path / "run_b", ["ac_1", "r@1"], n_steps=120)  # 120 points: the loss is smoothed
    out = tmp_path / "curves.png"
    fig, titles = load_tool("plot_log").plot_runs([str(a), str(b)], str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    # per step: loss, lr, max_mem_gb; per epoch: ls (train), ac_1, ac_5, r@1 (val + test on one axis)
    assert titles == ["loss", "lr", "max_mem_gb", "ls", "ac_1", "ac_5", "r@1"]
    assert len(fig.axes) == len(titles)
    ax = {a.get_title(): a for a in fig.axes}
    assert len(ax["ac_1"].lines) == 4          # 2 runs x (val, test)
    assert len(ax["ac_5"].lines) == 2          # only run_a has it
    assert len(ax["lr (per step)"].lines) == 4  # 4 groups, 2 distinct schedules, per run
    assert len(ax["loss (per step)"].lines) == 3  # run_a raw; run_b raw (faint) + moving average
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["run_a", "run_b", "train", "val", "test"]


def test_labels_tell_same_named_folders_apart():
    labels = load_tool("plot_log").run_labels
    assert labels(["runs/r1/log.json", "runs/r2"]) == ["r1", "r2"]
    assert labels(["x/a/out", "y/a/out", "z/b/out"]) == ["x/a/out", "y/a/out", "z/b/out"]


def test_bad_folders_one_line_error(tmp_path, capsys):
    tool = load_tool("plot_log")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main_guard(tool.main, [str(empty), "--output", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(empty) in err and "log.json" in err
    run = fake_run(tmp_path / "run", ["ac_1"])
    (run / "log.json").write_text(json.dumps({"epoch": [0, 1], "ac_1_vl": [0.5]}))
    assert main_guard(tool.main, [str(run), "--output", str(tmp_path / "c.png")]) == 2
    assert "ac_1_vl" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_unreadable_json_exits_without_traceback(tmp_path):
    run = fake_run(tmp_path / "run", ["ac_1"])
    with open(run / "log_steps.jsonl", "a") as f:
        f.write('{"step": 70, "loss": \n')
    p = subprocess.run([sys.executable, TOOL, str(run), "--output", str(tmp_path / "c.png")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == f"error: {run / 'log_steps.jsonl'}:7: not valid JSON (Expecting value)"


def test_axes_say_their_unit_and_counts_come_after_the_metrics(tmp_path):
    run = fake_run(tmp_path / "run", ["ac_1", "r@1", "median_rank"])
    log = json.loads((run / "log.json").read_text())
    log.update(n_vl=[0, 8, 8], n_invalid_vl=[0, 1, 0], CIDEr_vl=[0.1, 0.5, 0.9])
    (run / "log.json").write_text(json.dumps(log))
    fig, titles = load_tool("plot_log").plot_runs([str(run)], str(tmp_path / "c.png"))
    assert titles == ["loss", "lr", "max_mem_gb", "ls", "ac_1", "r@1", "median_rank", "CIDEr", "n", "n_invalid"]
    units = {a.get_title(): a.get_ylabel() for a in fig.axes}
    assert units == {"loss (per step)": "loss (cross-entropy)", "lr (per step)": "learning rate",
                     "max_mem_gb (per step)": "GiB", "ls": "loss (cross-entropy)", "ac_1": "accuracy (0-1)",
                     "r@1": "recall (%)", "median_rank": "rank (1 = first)", "CIDEr": "caption score",
                     "n (count)": "count", "n_invalid (count)": "count"}


def test_a_run_with_no_logged_step_is_named(tmp_path, capsys):
    run = fake_run(tmp_path / "run", ["ac_1"])
    (run / "log_steps.jsonl").write_text("")
    (run / "args.json").write_text(json.dumps({"logging_steps": 20}))
    assert main_guard(load_tool("plot_log").main, [str(run), "--output", str(tmp_path / "c.png")]) == 0
    err = capsys.readouterr().err
    assert f"note: {run}: no step was logged (the run took fewer optimizer steps than logging_steps = 20)" in err
