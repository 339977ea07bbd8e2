"""The preflight: with no data and no weights present, every benchmark config names every missing input in
one run, each with where it comes from, and exits 2 before any work; `--check` runs only the check."""
import glob
import json
import os

import pytest

import lavender
from lavender import paths
from lavender.models import factory
from lavender.paths import REPO_ROOT
from lavender.run import main_guard, run
from tiny import make_color_world, tiny_argv

FAMILY = {"qaoe": "qaoe", "qamc": "qamc", "retrieval": "retrieval", "captioning": "captioning",
          "pretrain": "pretrain", "multi-task": "multi-task"}
BENCHMARKS = sorted(os.path.basename(p)[5:-5] for p in glob.glob(os.path.join(REPO_ROOT, "_args", "args_*.json"))
                    if not os.path.basename(p).startswith(("args_demo-", "args_custom")))


@pytest.fixture
def nothing_downloaded(tmp_path, monkeypatch):
    """An empty _models/ (whatever this machine holds) and an empty data folder."""
    models = tmp_path / "_models"
    models.mkdir()
    monkeypatch.setattr(paths, "MODELS_DIR", str(models))
    monkeypatch.setattr(factory, "MODELS_DIR", str(models))
    monkeypatch.setattr(paths, "minilm_dir", lambda: None)  # not even the packaged vocabulary
    (tmp_path / "data").mkdir()
    return tmp_path


def expected_data(cfg, data):
    """The data files a benchmark config reads, from the config itself (not from the code under test)."""
    if cfg["type"] == "multi-task":
        return set().union(*(expected_data({**cfg, **e}, data) for e in cfg["datasets"]))
    if cfg["type"] == "captioning":
        return {os.path.join(data, cfg[k]) for k in ("train_yaml", "val_yaml", "test_yaml") if k in cfg}
    if cfg["type"] == "pretrain":
        return {os.path.join(data, f) for ds in cfg["dataset"] for f in
                [f"txt_{ds}.json", f"{ds}_val.tsv"] + [f"{ds}_train_{p}.tsv" for p in range(cfg["size_part"])]}
    return {os.path.join(data, f"img_{cfg['dataset']}.tsv"), os.path.join(data, f"txt_{cfg['task']}.json")}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_config_names_every_missing_input_at_once(name, nothing_downloaded, capsys):
    data, out = str(nothing_downloaded / "data"), nothing_downloaded / "out"
    cfg = json.load(open(os.path.join(REPO_ROOT, "_args", f"args_{name}.json")))
    argv = ["--config", os.path.join(REPO_ROOT, "_args", f"args_{name}.json"), "--data_dir", data,
            "--path_output", str(out)]
    rc = main_guard(lambda a: run(FAMILY[cfg["type"]], a), argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    head, *lines = err.strip().splitlines()
    listed = {line.split(": ", 1)[1] for line in lines if line.startswith("  - ")}
    froms = [line for line in lines if line.startswith("      from: ")]
    assert head.startswith(f"error: {len(listed)} input(s) of ") and len(listed) + len(froms) == len(lines)
    want = expected_data(cfg, data)
    want.add(os.path.join(paths.MODELS_DIR, "bert-base-uncased"))
    if cfg.get("vis_backbone_init") == "3d":
        want.add(os.path.join(paths.MODELS_DIR, "video_swin_transformer",
                              f"swin_base_patch244_window877_kinetics{cfg['kinetics']}_22k.pth"))
    assert listed == want | {os.path.join(paths.MODELS_DIR, "bert-base-uncased", "vocab.txt")}
    assert all(any(w in f for w in ("http", "_tools/", "pip install", "huggingface-cli")) for f in froms), froms
    assert not out.exists() or not os.listdir(out)  # nothing was started


def test_sources_name_the_download_or_the_tool(nothing_downloaded, capsys):
    data = str(nothing_downloaded / "data")
    rc = main_guard(lambda a: run("qaoe", a), ["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json"),
                                                "--data_dir", data, "--path_ckpt", str(nothing_downloaded / "gone.pt"),
                                                "--video_dir", str(nothing_downloaded / "clips")])
    err = capsys.readouterr().err
    assert rc == 2 and "path_ckpt: " + str(nothing_downloaded / "gone.pt") in err
    assert "video files (video_dir): " + str(nothing_downloaded / "clips") in err
    assert "img_msrvtt.tsv" not in err  # video_dir replaces the frame store
    assert "BERT weights" not in err  # with path_ckpt the text weights may come from the checkpoint
    assert "drive.google.com" in err and "_tools/prepare_dataset.py" in err
    missing = lavender.check(os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json"), data_dir=data,
                             path_ckpt=str(nothing_downloaded / "models" / "lavender.pt"))
    ckpt, = [m for m in missing if m.what == "path_ckpt"]
    assert ckpt.source().endswith("https://datarelease.blob.core.windows.net/lavender/pretrained_ckpt/lavender.pt")


def test_a_store_without_its_index_says_how_to_rebuild_it(tmp_path, capsys):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa"})
    for f in glob.glob(os.path.join(world, "img_tiny.*")):
        if not f.endswith(".tsv"):
            os.remove(f)
    rc = main_guard(lambda a: run("qaoe", a), tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe"))
    err = capsys.readouterr().err
    assert rc == 2 and "index of img_tiny.tsv" in err
    assert f"_tools/make_id2lineidx_pkl.py --input_file {world}/img_tiny.tsv --output_file {world}/img_tiny.id2lineidx.pkl" in err


def test_check_only_checks(tmp_path, capsys):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa"})
    argv = tiny_argv(world, tmp_path / "out", "tiny-qa", "qaoe")
    with pytest.raises(SystemExit) as e:
        run("qaoe", argv + ["--check"])
    assert e.value.code == 0
    assert not [d for d in os.listdir(tmp_path / "out") if d.startswith("_")]  # no run folder
    assert lavender.check(argv[1]) == []
    os.remove(os.path.join(world, "txt_tiny-qa.json"))
    assert [m.what for m in lavender.check(argv[1])] == ["annotations"]


def test_the_captioning_baseline_tool_lists_every_missing_file(tmp_path, capsys):
    import runpy
    tool = runpy.run_path(os.path.join(REPO_ROOT, "_tools", "caption_baseline.py"))
    rc = main_guard(tool["main"], ["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-cap.json"),
                                   "--data_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: 2 input(s) of ") and "github.com/microsoft/SwinBERT" in err
    for yaml in ("train_32frames.yaml", "test_32frames.yaml"):
        assert f"captioning yaml: {tmp_path / 'MSRVTT-v2' / yaml}" in err
