import json
import os

import pytest

from lavender.errors import ConfigError
from lavender.config import load_config, save_config
from lavender.paths import REPO_ROOT

ARGS = os.path.join(REPO_ROOT, "_args")


def test_every_original_config_loads_with_its_keys():
    ref = json.load(open(os.path.join(os.path.dirname(__file__), "..", "data", "original_config_keys.json")))
    for name, keys in ref.items():
        path = os.path.join(REPO_ROOT, name)
        assert sorted(json.load(open(path))) == sorted(keys), name
        cfg = load_config(["--config", path])
        assert cfg.data_dir is None or os.path.isabs(cfg.data_dir) or cfg.type == "multi-task"


def test_overrides_are_typed_from_the_json_value(tmp_path):
    cfg = load_config(["--config", f"{ARGS}/args_msrvtt-qa.json", "--lr", "1e-5", "--size_batch", "8",
                       "--use_checkpoint", "false", "--img_transform", "img_center_crop",
                       "--path_output", str(tmp_path)])
    assert cfg.lr == 1e-5 and isinstance(cfg.lr, float)
    assert cfg.size_batch == 8 and isinstance(cfg.size_batch, int)
    assert cfg.use_checkpoint is False
    assert cfg.img_transform == ["img_center_crop"]
    assert cfg.path_output == str(tmp_path)
    assert cfg.data_dir == os.path.join(REPO_ROOT, "_datasets")  # config paths: relative to the repo


def test_checkpoint_keep_needs_checkpointed_blocks(tmp_path):
    from lavender.config import DEFAULTS
    from lavender.models.video_swin import SwinConfig
    assert SwinConfig().checkpoint_keep == DEFAULTS["checkpoint_keep"] == "linear"
    base = ["--config", f"{ARGS}/args_msrvtt-qa.json", "--path_output", str(tmp_path)]
    assert load_config(base + ["--checkpoint_keep", "matmul"]).checkpoint_keep == "matmul"  # use_checkpoint true
    assert load_config(base + ["--use_checkpoint", "false"]).checkpoint_keep == "linear"  # the default: moot
    with pytest.raises(ConfigError, match="checkpoint_keep none .* use_checkpoint false"):
        load_config(base + ["--checkpoint_keep", "none", "--use_checkpoint", "false"])
    with pytest.raises(ConfigError, match="checkpoint_keep"):
        load_config(base + ["--checkpoint_keep", "everything"])


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'size_batch'"):
        load_config(["--config", f"{ARGS}/args_msrvtt-qa.json", "--size_bach", "8"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "qaoe", "learning_rate": 1e-4}))
    with pytest.raises(ConfigError, match="bad.json.*'learning_rate'"):
        load_config(["--config", str(bad)])


def test_wrong_types_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="--size_batch: cannot read 'eight'"):
        load_config(["--config", f"{ARGS}/args_msrvtt-qa.json", "--size_batch", "eight"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"size_epoch": "ten"}))
    with pytest.raises(ConfigError, match="'size_epoch' must be a number"):
        load_config(["--config", str(bad)])
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        load_config(["--config", f"{ARGS}/args_msrvtt-qa.json", "--path_ckpt", str(tmp_path / "nope.pt")])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(["--config", str(tmp_path / "nope.json")])


def test_launcher_flags_and_args_json(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = load_config(["--local-rank=0", "--config", f"{ARGS}/args_tgif-action.json", "--eval_only"])
    assert os.environ["LOCAL_RANK"] == "0"
    assert cfg.size_epoch == 0 and cfg.img_transform == ["img_rand_crop"]  # string in the json
    save_config(cfg, str(tmp_path / "args.json"))
    assert json.load(open(tmp_path / "args.json"))["task"] == "tgif-action"
