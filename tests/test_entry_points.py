"""Every benchmark config runs through its entry script (one step, tiny model, demo-shaped data),
and every command in the README names files that exist."""
import json
import os
import re
import runpy
import sys

import pytest

from lavender.paths import REPO_ROOT
from tiny import make_color_world, tiny_overrides

BENCHMARKS = {  # config -> (script, annotation kind)
    "msrvtt-qa": ("main_qaoe_mlm.py", "qa"), "msvd-qa": ("main_qaoe_mlm.py", "qa"),
    "tgif-frame": ("main_qaoe_mlm.py", "qa"), "lsmdc-fib": ("main_qaoe_mlm.py", "fib"),
    "tgif-action": ("main_qamc_mlm.py", "qamc"), "tgif-transition": ("main_qamc_mlm.py", "qamc"),
    "msrvtt-mc": ("main_qamc_mlm.py", "mc"), "lsmdc-mc": ("main_qamc_mlm.py", "mc"),
    "msrvtt-retrieval": ("main_retrieval_tsv.py", "retrieval"), "didemo-retrieval": ("main_retrieval_tsv.py", "retrieval"),
    "msvd-retrieval": ("main_retrieval_tsv.py", "retrieval"), "lsmdc-retrieval": ("main_retrieval_tsv.py", "retrieval"),
}


def _run_script(script, argv):
    """Run an entry script from the repository root (the configs' relative paths), as from a shell."""
    old, cwd = sys.argv, os.getcwd()
    sys.argv = [script] + argv
    os.chdir(REPO_ROOT)
    try:
        runpy.run_path(os.path.join(REPO_ROOT, script), run_name="__main__")
    except SystemExit as e:  # a script's exit status: 0 is success
        if e.code:
            raise
    finally:
        sys.argv = old
        os.chdir(cwd)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_config_runs_one_step(name, tmp_path):
    script, kind = BENCHMARKS[name]
    cfg = json.load(open(os.path.join(REPO_ROOT, "_args", f"args_{name}.json")))
    world = make_color_world(str(tmp_path / "data"), n_videos=8, dataset=cfg["dataset"], tasks={cfg["task"]: kind})
    argv = ["--config", f"_args/args_{name}.json"] + tiny_overrides(world, tmp_path / "out")
    if cfg["size_epoch"]:
        argv += ["--size_epoch", "1"]
    _run_script(script, argv)
    run_dir = [d for d in os.listdir(tmp_path / "out") if d.startswith(f"_{cfg['task']}_")][0]
    log = json.load(open(tmp_path / "out" / run_dir / "log.json"))
    assert any(k.endswith("_vl") for k in log), log
    if cfg["size_epoch"]:
        assert "ls_tr" in log


@pytest.mark.parametrize("name", ["msrvtt-cap", "msvd-cap", "msrvtt-cap_debug"])
def test_caption_config_runs_one_step(name, tmp_path):
    cfg = json.load(open(os.path.join(REPO_ROOT, "_args", f"args_{name}.json")))
    folder = os.path.dirname(cfg["train_yaml"])  # MSRVTT-v2/train_32frames.yaml ... relative to data_dir
    world = make_color_world(str(tmp_path / "data"), n_videos=8, tasks={folder: "cap"}, cap_stem="{split}_32frames")
    argv = ["--config", f"_args/args_{name}.json", "--size_epoch", "1", "--caption_meteor", "false"]
    _run_script("main_caption.py", argv + tiny_overrides(world, tmp_path / "out"))
    run_dir = tmp_path / "out" / [d for d in os.listdir(tmp_path / "out") if d.startswith(f"_{cfg['task']}_")][0]
    log = json.load(open(run_dir / "log.json"))
    assert "ls_tr" in log and "CIDEr_vl" in log and ("CIDEr_ts" in log) == ("test_yaml" in cfg)  # debug: no test
    assert (run_dir / "caption_predictions" / f"ep1_pred.{folder}.val_32frames.max20.tsv").exists()


KINDS = {"retrieval": "retrieval", "qaoe": "qa", "qamc": "qamc", "captioning": "cap"}


@pytest.mark.parametrize("name", ["multi-task_all", "multi-task_ablate"])
def test_multi_task_config_runs_one_step(name, tmp_path):
    """Every entry's task on demo-shaped data (each dataset's frame store; captioning in SwinBERT's layout);
    the command line's data_dir and sizes apply to every entry, as documented."""
    cfg = json.load(open(os.path.join(REPO_ROOT, "_args", f"args_{name}.json")))
    data = str(tmp_path / "data")
    by_dataset = {}
    for e in cfg["datasets"]:
        kind = "fib" if e["task"].endswith("fib") else "mc" if e["task"].endswith("-mc") else KINDS[e["type"]]
        name_ = os.path.dirname(e["train_yaml"]) if kind == "cap" else e["task"]
        by_dataset.setdefault(e.get("dataset", "cap"), {})[name_] = kind
    for dataset, tasks in by_dataset.items():
        make_color_world(data, n_videos=8, dataset=dataset, tasks=tasks, cap_stem="{split}_32frames")
    argv = ["--config", f"_args/args_{name}.json", "--size_epoch", "1", "--caption_meteor", "false"]
    _run_script("main_multi_task_mlm.py", argv + tiny_overrides(data, tmp_path / "out"))
    run_dir = [d for d in os.listdir(tmp_path / "out") if d.startswith(f"_{cfg['task']}_")][0]
    log = json.load(open(tmp_path / "out" / run_dir / "log.json"))
    for e in cfg["datasets"]:
        assert any(k.startswith(e["task"] + "_") and k.endswith("_vl") for k in log), e["task"]
    assert "ls_tr" in log and "mean_vl" in log


@pytest.mark.parametrize("name", ["pretrain_webvid", "pretrain_webvid_cc"])
def test_pretrain_config_runs_one_step(name, tmp_path):
    sys.path.insert(0, os.path.join(REPO_ROOT, "_tools"))
    from split_tsv_parts import split_parts
    cfg = json.load(open(os.path.join(REPO_ROOT, "_args", f"args_{name}.json")))
    data = tmp_path / "data"
    world = make_color_world(str(data), n_videos=8, dataset="all", tasks={})
    keys = [f"video{i}" for i in range(8)]
    for ds in cfg["dataset"]:  # webvid2.5m: video parts, cc3m: image parts, as the original's layout
        split_parts(os.path.join(world, "img_all.tsv"), ds, world, 2, keys[:6], keys[6:], image=ds == "cc3m")
        caps = {s: {k: [f"a shape number {k[5:]}"] for k in ks} for s, ks in (("train", keys[:6]), ("val", keys[6:]))}
        with open(os.path.join(world, f"txt_{ds}.json"), "w") as f:
            json.dump(caps, f)
    argv = ["--config", f"_args/args_{name}.json", "--size_part", "2", "--size_epoch", "1"]
    argv += tiny_overrides(world, tmp_path / "out")
    _run_script("main_pretrain_mlm.py", argv)
    run_dir = [d for d in os.listdir(tmp_path / "out") if d.startswith("_pretrain_")][0]
    log = json.load(open(tmp_path / "out" / run_dir / "log.json"))
    assert {f"ac_vtm_{ds}_vl" for ds in cfg["dataset"]} <= set(log) and "ls_tr" in log
    assert os.path.exists(tmp_path / "out" / run_dir / "ckpt_violet_pretrain_1.pt")


def test_eval_retrieval_script(tmp_path):
    world = make_color_world(str(tmp_path / "data"), n_videos=8, dataset="msrvtt",
                             tasks={"msrvtt-retrieval": "retrieval"})
    from lavender.config import load_config
    from lavender.models.factory import create_model
    import torch
    argv = ["--config", "_args/args_msrvtt-retrieval.json"] + tiny_overrides(world, tmp_path / "out")
    cfg = load_config([os.path.join(REPO_ROOT, a) if a.startswith("_args") else a for a in argv])
    ckpt = tmp_path / "ckpt.pt"
    torch.save(create_model(cfg).state_dict(), ckpt)
    _run_script("eval_retrieval_tsv.py", argv + ["--path_ckpt", str(ckpt)])
    out = [d for d in os.listdir(tmp_path / "out") if "_eval_" in d][0]
    res = json.load(open(tmp_path / "out" / out / "metrics.json"))
    assert res["test"]["n_text"] == 2 and res["test"]["n_video"] == 2
    assert (tmp_path / "out" / out / "scores_test.npy").exists()


def test_readme_commands_name_existing_files():
    text = open(os.path.join(REPO_ROOT, "README.md")).read()
    cmds = re.findall(r"python (?:-m \S+ )?([\w./-]+\.py)(?: [^`|]*?)?(?:--config (_args/[\w.-]+\.json))?", text)
    assert len(cmds) > 20
    for script, config in cmds:
        assert os.path.exists(os.path.join(REPO_ROOT, script)), script
        if config:
            assert os.path.exists(os.path.join(REPO_ROOT, config)), config
    for config in re.findall(r"_args/[\w.-]+\.json", text):
        assert os.path.exists(os.path.join(REPO_ROOT, config)), config
