"""Every config key is accounted for: read by the code its name says, listed as accepted without effect
(with the reason, and a warning when set), or refused while its feature is not built; the settings
taken from the args.json beside a checkpoint; keys a task does not read are refused."""
import json
import os
import re

import pytest

from lavender.config import CKPT_ARGS, DEFAULTS, KEYS, NO_EFFECT, NOT_BUILT, TASK_KEYS, Config, load_config, validate
from lavender.errors import ConfigError
from lavender.paths import REPO_ROOT
from lavender.tasks import build_task
from lavender.tokenizer import load_tokenizer
from tiny import lavender_log, make_color_world, tiny_argv, write_tiny_vocab

# key -> the modules (repository paths) that read it, from each key's declaration (`read_in`). A new key
# names its readers there, or says why it has no effect (`no_effect`), or that its feature is refused (`not_built`).
READERS = {k.name: [f"lavender/{m}" for m in k.read_in] for k in KEYS if k.read_in}
HOW = ("declare in lavender/config/keys.py the module(s) that read it (read_in), or the reason it is accepted "
       "without effect (no_effect, a warning when set), or that its feature is refused (not_built)")


def _reads(source, key):
    return re.search(rf"\.{key}\b|[\"']{key}[\"']", source) is not None


def _source(rel):
    with open(os.path.join(REPO_ROOT, rel)) as f:
        return f.read()


def test_every_key_is_accounted_for_in_one_place():
    for key in DEFAULTS:
        places = [name for name, table in (("READERS", READERS), ("NO_EFFECT", NO_EFFECT), ("NOT_BUILT", NOT_BUILT))
                  if key in table]
        assert places, f"config key {key!r} is not accounted for: {HOW}"
        assert len(places) == 1, f"config key {key!r} is in {places}: it belongs in one of them only"
    stale = sorted((set(READERS) | set(NO_EFFECT) | set(NOT_BUILT)) - set(DEFAULTS))
    assert not stale, f"{stale} are listed but no longer config keys: remove them"


def test_each_key_is_read_where_the_table_says():
    for key, modules in READERS.items():
        for rel in modules:
            assert _reads(_source(rel), key), f"{rel} does not read config key {key!r}: fix READERS or the code"


def test_no_effect_keys_are_read_nowhere_and_warn_once(tmp_path):
    package = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(REPO_ROOT, "lavender")) for f in fs
               if f.endswith(".py") and os.path.basename(d) != "config"]
    scripts = [os.path.join(REPO_ROOT, f) for f in os.listdir(REPO_ROOT) if f.endswith(".py")]
    for path in package + scripts:
        with open(path) as f:
            src = f.read()
        read = [k for k in NO_EFFECT if _reads(src, k)]
        assert not read, f"{path} reads {read}, listed in NO_EFFECT: move them to READERS"
    cfg_file = tmp_path / "args.json"
    cfg_file.write_text(json.dumps({"type": "qaoe", "txt_dir": "./elsewhere", "size_txt_pre": 25}))
    with lavender_log() as records:
        load_config(["--config", str(cfg_file), "--size_patch", "16"])
    warned = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert len(warned) == 2, warned  # size_txt_pre is at its default: no warning
    assert any("txt_dir" in w and "no effect" in w for w in warned)
    assert any("size_patch" in w and "no effect" in w for w in warned)


def test_not_built_and_bad_values_are_refused():
    argv = ["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json")]
    for extra, match in ((["--is_decoder", "true"], "is_decoder .*not built"),
                         (["--vis_backbone", "resnet"], "vis_backbone must be one of \\['vidswin'\\]"),
                         (["--vis_backbone_init", "imagenet"], "vis_backbone_init must be one of \\['3d', '2d', 'random'\\]"),
                         (["--mask_pos", "middle"], "mask_pos must be one of"),
                         (["--task_token", "fib"], "task_token must be one of \\['vtm', 'mc', 'oe', 'cap'\\]"),
                         (["--pretrain_tasks", "mtm,itm"], "pretrain_tasks must be"),
                         (["--kinetics", "-1"], "kinetics to 400 or 600"),
                         (["--size_part", "0"], "size_part must be")):
        with pytest.raises(ConfigError, match=match):
            load_config(argv + extra)
    # the defaults are values the code accepts (the original's default vis_backbone_init is "2d")
    assert validate(Config(DEFAULTS)).vis_backbone_init == "2d"
    cfg = load_config(argv + ["--size_part", '{"webvid2.5m": 4}'])
    assert cfg.size_part == {"webvid2.5m": 4}


def test_keys_a_task_does_not_read_are_refused(tmp_path):
    world = make_color_world(str(tmp_path / "w"), n_videos=8, tasks={"tiny-qa": "qa", "tiny-mc": "mc"})
    tok = load_tokenizer(write_tiny_vocab(world)[0])
    for task, type_, extra, match in (("tiny-qa", "qaoe", {"multi_clip_testing": True}, "retrieval evaluation"),
                                      ("tiny-qa", "qaoe", {"size_part": 3}, "pretraining"),
                                      ("tiny-mc", "qamc", {"mask_pos": "prepend", "mc_mode": "truefalse"},
                                       "option-index")):
        cfg = load_config(tiny_argv(world, tmp_path, task, type_, **extra))
        with pytest.raises(ConfigError, match=match):
            build_task(type_, cfg, tok)
    assert set(TASK_KEYS) == {"mask_pos", "multi_clip_testing", "size_part", "pretrain_tasks", "data_ratio",
                              "loss_weight", "task_sampling", "task_temperature"}


def test_args_json_beside_the_checkpoint(tmp_path):
    """The original's get_args: backbone keys (and input sizes for evaluation-only runs) from the training
    config beside path_ckpt; the command line wins; every change is logged."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt.pt").write_bytes(b"")
    saved = {"vidswin_size": "tiny", "kinetics": 400, "txt_backbone_embed_only": False, "size_frame": 3,
             "tokenizer": "./_models/huggingface_transformers/bert-base-uncased/",  # as the original wrote it
             "size_txt": 40, "img_transform": ["img_center_crop"], "lr": 1.0, "bert_config": {"hidden_size": 32}}
    (run / "args.json").write_text(json.dumps(saved))
    base = ["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json"), "--path_ckpt", str(run / "ckpt.pt")]
    with lavender_log() as records:
        cfg = load_config(base + ["--kinetics", "600"])
    assert cfg.vis_backbone_size == "tiny"          # legacy name vidswin_size, as update_args renames it
    assert cfg.kinetics == 600                      # the command line wins ...
    assert cfg.txt_backbone_embed_only is False and cfg.bert_config == {"hidden_size": 32}
    assert cfg.tokenizer == "bert-base-uncased"
    assert cfg.size_frame == 5 and cfg.size_txt == 25 and cfg.lr == 2e-5  # training run: sizes stay; lr never
    text = "\n".join(r.getMessage() for r in records)
    assert "has kinetics = 400; the command line's 600 is kept" in text
    assert "vis_backbone_size = 'tiny' taken from" in text
    cfg = load_config(base + ["--eval_only", "--size_txt", "30"])
    assert cfg.size_frame == 3 and cfg.img_transform == ["img_center_crop"]  # evaluation only: input sizes too
    assert cfg.size_txt == 30
    assert set(CKPT_ARGS) >= {"vis_backbone", "vis_backbone_size", "kinetics", "swinbert", "txt_backbone",
                              "fusion_encoder", "txt_backbone_embed_only", "tokenizer"}
