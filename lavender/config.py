"""Run configuration: an `_args/*.json` file plus typed `--key value` command-line overrides.

Keys and defaults are those of the original repository (SPEC §7.1) plus a few of ours (marked
below). A key that is neither here nor in the JSON is an error that suggests the closest valid key;
values from the command line are typed after the JSON value (or the default) they replace.
"""
import argparse
import difflib
import json
import logging
import os
import sys

from .paths import repo_path

log = logging.getLogger("lavender")

# key -> default. A default of None accepts any JSON value (a plain string if it does not parse).
DEFAULTS = {
    # --- the original's keys (SPEC §7.1) ---
    "type": None, "task": None, "dataset": None, "data_dir": "./_datasets",
    "size_img": 224, "size_frame": 4, "size_txt": 25, "size_vocab": -1, "size_test": None,
    "size_option": 5, "size_epoch": 20, "size_batch": 8, "lr": 1.2e-5, "decay": 1e-3,
    "max_grad_norm": -1.0, "use_checkpoint": False, "deepspeed": False, "temp": 1.0,
    "vis_backbone_init": "2d", "kinetics": -1, "vis_backbone": "vidswin", "vis_backbone_size": "base",
    "txt_backbone": "bert-base-uncased", "fusion_encoder": "bert-base-uncased", "tokenizer": None,
    "txt_backbone_embed_only": True, "path_ckpt": "", "img_transform": ["img_rand_crop"],
    "size_part": 8, "pretrain_tasks": ["mtm", "vtm"], "train_yaml": None, "val_yaml": None,
    "test_yaml": None, "p_mask": 0.15, "max_gen_length": 20, "attn_mask_type": "seq2seq",
    "datasets": None, "txt_dir": None, "img_tsv_dir": None, "data_ratio": 1.0,
    "path_output": "./_snapshot", "reinit_head": False, "fusion_encoder_rand_init": False,
    "n_workers": 4, "max_size_frame": 6, "max_size_patch": 14, "size_patch": 32, "size_txt_pre": 25,
    "seed": 88, "logging_steps": 20, "vis_backbone_lr_mul": 1.0, "enable_task_token": False,
    "task_token": None, "enable_prompt": False, "mask_pos": "append", "multi_clip_testing": False,
    "swinbert": False, "is_decoder": False, "label_smoothing": 0.0, "drop_worst_ratio": 0.0,
    "num_beams": 1, "do_sample": False, "gen_temperature": 1.0, "top_k": 0, "top_p": 1.0,
    "repetition_penalty": 1.0,
    # --- ours ---
    "head": "mlm",                 # "mlm" (LAVENDER) or "task_specific" (the baseline heads)
    "bert_init": "pretrained",     # text embeddings, fusion encoder, MLM head: "pretrained" (from the
                                   # txt_backbone / fusion_encoder folders, as the original) or "random"
                                   # (tiny test models without a pretrained BERT)
    "swin_config": None,           # dict overriding Video Swin sizes (tiny demo models)
    "bert_config": None,           # dict overriding BertConfig fields (tiny demo models)
    "precision": "auto",           # auto | fp32 | fp16 | bf16 ("auto": fp16 on GPU if deepspeed, else fp32)
    "grad_accum": 1,               # gradient accumulation steps
    "compile": False,              # torch.compile the video and fusion encoders (models.compile_encoders)
    "frame_column": "auto",        # TSV column where frames start ("auto" detects base64 images;
                                   # "swinbert": SwinBERT's captioning rule, row[2:] or the image row[-1])
    "skip_bad": False,             # skip and count bad/missing videos instead of stopping
    "ckpt_strict": True,           # a weights file that fills only part of what it should is an error
                                   # (false: load the part that fits, report printed as a warning)
    "trust_checkpoint": False,     # allow weights files that need full unpickling (can run code from the file)
    "eval_only": False,            # evaluate the loaded checkpoint only (zero-shot); = size_epoch 0
    "resume": "",                  # "latest" or a path to a resume_*.pt state file
    "save_steps": 0,               # also write resume state every N optimizer steps (0: epoch ends only)
    "max_steps": 0,                # stop after N optimizer steps (0: no limit; smoke tests)
    "size_batch_eval": 0,          # eval batch (0: size_batch)
    "retrieval_score": "prob",     # retrieval/MC scoring: "prob" (softmax of true/false) or "ratio" (original)
    "retrieval_text_batch": 0,     # texts fused per video in one pass during full retrieval eval (0: auto)
    "eval_splits": ["val", "test"],
    "image_datasets": [],          # pretraining: extra dataset names read as images (size_frame 1)
    "mc_mode": "auto",             # multiple choice: "digit" (TGIF), "truefalse" (MSRVTT/LSMDC-MC) or auto
    "task_sampling": "uniform",    # multi-task: which task a step serves, "uniform" (original) or "proportional"
    "drop_worst_after": 0,         # captioning loss: drop_worst_ratio applies after this many training batches
                                   # (SwinBERT's CaptioningLoss key, which the original never read)
    "caption_meteor": True,        # captioning evaluation: compute METEOR (a Java run of ~10-40 s per split)
    "log_level": "info",
}

# Keys the original accepts but never uses: accepted for compatibility, with no effect here either.
# A non-default value logs one warning naming the key. Every other key of DEFAULTS is read by the code
# its name says (tests/engine/test_config_keys.py checks both).
NO_EFFECT = {
    "txt_dir": "the original sets it to data_dir and never reads it (annotations are {data_dir}/txt_{task}.json)",
    "img_tsv_dir": "the original sets it to data_dir and never reads it (frames are {data_dir}/img_{dataset}.tsv)",
    "size_txt_pre": "the original never reads it (a pretext is one task token or the prompt sentence's length)",
    "size_patch": "the visual token grid follows from the frames and Video Swin (32 px per token); the original "
                  "used it only to recompute that grid in pretraining",
    "attn_mask_type": "the original ignores it: captioning always uses the seq2seq mask, the other tasks the full one",
}

# Keys of features that are not built: any other value than the one given is refused.
NOT_BUILT = {
    "is_decoder": (False, "is_decoder true (a decoder-style fusion encoder with a key/value cache) is not built; "
                          "the original raised NotImplementedError on that path too"),
}

# Keys that only some task classes read (`Task.reads`): a non-default value for a task that does not
# read it is refused (lavender.tasks.check_task_keys). Value: what the key applies to.
TASK_KEYS = {
    "mask_pos": "the option-index multiple-choice layout (qamc with mc_mode digit, head mlm)",
    "multi_clip_testing": "retrieval evaluation",
    "size_part": "pretraining",
    "pretrain_tasks": "pretraining",
    "data_ratio": "the training split of annotation-item tasks (not pretraining parts)",
}

# What a run takes from the args.json beside `path_ckpt` (the original's update_args, SPEC §2.11): the
# backbones the weights belong to, plus our model-shape keys; for evaluation-only runs (size_epoch 0) also
# the input sizes the weights were trained with. Values given on the command line win.
CKPT_ARGS = ("vis_backbone", "vis_backbone_size", "kinetics", "swinbert", "txt_backbone", "fusion_encoder",
             "txt_backbone_embed_only", "tokenizer", "swin_config", "bert_config")
CKPT_ARGS_EVAL = ("size_frame", "size_txt", "size_img", "img_transform")
ORIGINAL_BERT_DIR = os.path.normpath("./_models/huggingface_transformers/bert-base-uncased/")

MASK_POS = ("append", "prepend", "insert", "replace")
VIS_BACKBONE_INIT = ("3d", "2d", "random")
PRETRAIN_TASKS = ("mtm", "vtm")
DICT_OK = ("size_part",)  # int keys that also take the original's per-dataset dict

# Values of these keys are paths; relative values from a config file are relative to the repo root.
PATH_KEYS = ("data_dir", "path_output", "path_ckpt")

ALIASES = {"local-rank": "local_rank"}


class ConfigError(ValueError):
    """A bad key or value in a config file or on the command line."""


class Config(dict):
    """A dict with attribute access (`cfg.size_batch`), as the original's args object.
    `cli_keys` / `user_keys` (not dict items) name the keys set on the command line / by the user at all
    (config file or command line)."""

    cli_keys = user_keys = frozenset()

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(_unknown(key, self)) from None

    def __setattr__(self, key, value):
        self[key] = value

    def copy(self):
        out = Config(dict.copy(self))
        out.mark_user_keys(self.user_keys, self.cli_keys)
        return out

    def mark_user_keys(self, keys, cli=()):
        """Record `keys` as set by the user (and `cli` as set on the command line)."""
        object.__setattr__(self, "user_keys", frozenset(self.user_keys) | frozenset(keys))
        object.__setattr__(self, "cli_keys", frozenset(self.cli_keys) | frozenset(cli))


def _unknown(key, valid):
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {key!r}{hint}"


def _typed(key, raw, like):
    """Parse a command-line string `raw` to the type of `like` (JSON value or default)."""
    try:
        if key in DICT_OK and raw.strip().startswith("{"):
            return json.loads(raw)
        if isinstance(like, bool):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, str):
            return raw
        if isinstance(like, list):
            try:
                val = json.loads(raw)
            except json.JSONDecodeError:
                val = raw.split(",")  # --img_transform img_center_crop  or  a,b
            return val if isinstance(val, list) else [val]
        if isinstance(like, dict):
            return json.loads(raw)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"--{key}: cannot read {raw!r} as {type(like).__name__} "
                          f"(the config's value is {like!r})") from None


def _check_type(key, val, default, where):
    if default is None or val is None or (key in DICT_OK and isinstance(val, dict)):
        return val
    if isinstance(default, bool):
        if not isinstance(val, bool):
            raise ConfigError(f"{where}: {key!r} must be true/false, got {val!r}")
    elif isinstance(default, (int, float)):
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise ConfigError(f"{where}: {key!r} must be a number, got {val!r}")
        if isinstance(default, float):
            val = float(val)
    elif isinstance(default, str) and not isinstance(val, str):
        raise ConfigError(f"{where}: {key!r} must be a string, got {val!r}")
    elif isinstance(default, list) and isinstance(val, str):
        val = [val]  # tgif configs give img_transform as a string (SPEC §9 #13)
    return val


def _parse_overrides(argv):
    """`--key value` / `--key=value` pairs; a flag without value means true."""
    out, i = {}, 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: use --key value")
        key, _, val = tok[2:].partition("=")
        if key not in DEFAULTS:
            key = ALIASES.get(key, key).replace("-", "_")  # --local-rank style spellings
        if not _:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val = argv[i + 1]
                i += 1
            else:
                val = "true"
        out[key] = val
        i += 1
    return out


def load_config(argv=None, defaults=None):
    """Build the run config from `--config FILE` plus overrides (argv defaults to sys.argv[1:])."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--config", default=None)
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None)
    ap.add_argument("-h", "--help", action="store_true")
    known, rest = ap.parse_known_args(argv)
    if known.help:
        print("usage: SCRIPT --config _args/X.json [--key value ...]\n"
              "Any config key can be overridden, e.g. --lr 1e-5 --size_batch 8 --path_output out/ "
              "--path_ckpt ckpt.pt. Keys: " + ", ".join(sorted(DEFAULTS)))
        sys.exit(0)
    if known.local_rank is not None and "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(known.local_rank)  # torch.distributed.launch without --use-env

    cfg = Config({k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()})
    cfg.update(defaults or {})
    from_file = {}
    if known.config:
        path = known.config
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        with open(path) as f:
            try:
                from_file = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(from_file, dict):
            raise ConfigError(f"{path}: a config is a JSON object of keys, got a {type(from_file).__name__}")
        from_file.pop("config", None)  # a run's args.json records the file it was made from
        for key, val in from_file.items():
            if key not in DEFAULTS:
                raise ConfigError(f"{path}: {_unknown(key, DEFAULTS)}")
            cfg[key] = _check_type(key, val, DEFAULTS[key], path)
        for key in PATH_KEYS:
            if key in from_file and isinstance(from_file[key], str):
                cfg[key] = repo_path(from_file[key])
        if isinstance(cfg.get("datasets"), list):
            for i, entry in enumerate(cfg["datasets"]):
                for key, val in entry.items():
                    if key not in DEFAULTS:
                        raise ConfigError(f"{path}: datasets[{i}]: {_unknown(key, DEFAULTS)}")
                    entry[key] = _check_type(key, val, DEFAULTS[key], f"{path}: datasets[{i}]")
                if isinstance(entry.get("data_dir"), str):
                    entry["data_dir"] = repo_path(entry["data_dir"])
    cfg["config"] = known.config

    overrides = _parse_overrides(rest)
    cfg.mark_user_keys(set(from_file) | set(overrides), overrides)
    for key, raw in overrides.items():
        if key not in DEFAULTS:
            raise ConfigError(_unknown(key, DEFAULTS))
        like = from_file.get(key, DEFAULTS[key])
        cfg[key] = _typed(key, raw, like)
        if key in PATH_KEYS and cfg[key]:
            cfg[key] = os.path.abspath(cfg[key])  # command-line paths are relative to the CWD
    if cfg.eval_only:
        cfg.size_epoch = 0
    if cfg.path_ckpt:
        apply_checkpoint_args(cfg)
    if cfg.tokenizer is None:
        cfg.tokenizer = cfg.txt_backbone
    warn_no_effect(cfg, known.config or "command line")
    for i, entry in enumerate(cfg.datasets if isinstance(cfg.datasets, list) else []):
        warn_no_effect(entry, f"{known.config}: datasets[{i}]")
    return validate(cfg)


def warn_no_effect(cfg, where):
    """One warning per NO_EFFECT key set to another value than the default."""
    for key, reason in NO_EFFECT.items():
        if key in cfg and cfg[key] != DEFAULTS[key]:
            log.warning("%s: %s = %r has no effect (accepted for compatibility): %s", where, key, cfg[key], reason)


def _legacy_key(key):
    """The original's renames of old args.json keys (update_args): vidswin* and backbone* -> vis_backbone*."""
    if "vidswin" in key:
        return key.replace("vidswin", "vis_backbone")
    if "backbone" in key and "vis_backbone" not in key and "txt_backbone" not in key:
        return key.replace("backbone", "vis_backbone")
    return key


def apply_checkpoint_args(cfg):
    """Take CKPT_ARGS (and CKPT_ARGS_EVAL for size_epoch 0) from the args.json beside `path_ckpt`, as the
    original's get_args; keys given on the command line keep their value. Logs every value that changes."""
    path = os.path.join(os.path.dirname(cfg.path_ckpt), "args.json")
    if not os.path.isfile(path):
        return
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} (the training config beside path_ckpt): cannot read it ({e})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path} (the training config beside path_ckpt): not a JSON object")
    wanted = CKPT_ARGS + (CKPT_ARGS_EVAL if cfg.size_epoch == 0 else ())
    taken = {}
    for key, val in saved.items():
        key = _legacy_key(key)
        if isinstance(val, str) and os.path.normpath(val) == ORIGINAL_BERT_DIR:
            val = "bert-base-uncased"  # the original's get_args wrote its local folder in place of the name
        if key in wanted and key in DEFAULTS:
            taken[key] = _check_type(key, val, DEFAULTS[key], path)
    for key, val in taken.items():
        if val == cfg[key]:
            continue
        if key in cfg.cli_keys:
            log.warning("%s has %s = %r; the command line's %r is kept", path, key, val, cfg[key])
        else:
            log.warning("%s = %r taken from %s (the training config of path_ckpt; the config had %r)",
                        key, val, path, cfg[key])
            cfg[key] = val
    if taken:
        log.info("read %s beside path_ckpt: %s", path, ", ".join(sorted(taken)))


def validate(cfg):
    """Checks that are cheap and catch the usual mistakes before any work starts."""
    if cfg.path_ckpt and not os.path.isfile(cfg.path_ckpt):
        raise ConfigError(f"path_ckpt: checkpoint file not found: {cfg.path_ckpt}")
    if cfg.precision not in ("auto", "fp32", "fp16", "bf16"):
        raise ConfigError(f"precision must be one of auto/fp32/fp16/bf16, got {cfg.precision!r}")
    if cfg.head not in ("mlm", "task_specific"):
        raise ConfigError(f"head must be 'mlm' or 'task_specific', got {cfg.head!r}")
    if cfg.retrieval_score not in ("prob", "ratio"):
        raise ConfigError(f"retrieval_score must be 'prob' or 'ratio', got {cfg.retrieval_score!r}")
    if cfg.size_frame > cfg.max_size_frame:
        raise ConfigError(f"size_frame {cfg.size_frame} exceeds max_size_frame {cfg.max_size_frame}")
    _choice(cfg, "task_sampling", ("uniform", "proportional"))
    for key in ("size_batch", "grad_accum", "size_frame", "size_img", "size_txt"):
        if isinstance(cfg[key], (int, float)) and cfg[key] < 1:
            raise ConfigError(f"{key} must be >= 1, got {cfg[key]}")
    for key in ("size_epoch", "max_steps", "save_steps", "logging_steps", "n_workers"):
        if isinstance(cfg[key], (int, float)) and cfg[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]}")
    for key, (allowed, why) in NOT_BUILT.items():
        if cfg.get(key, allowed) != allowed:
            raise ConfigError(f"{key} {cfg[key]!r}: {why}")
    _choice(cfg, "vis_backbone", ("vidswin",), "the only visual backbone (as the original)")
    _choice(cfg, "vis_backbone_init", VIS_BACKBONE_INIT,
            "3d: Kinetics Video Swin weights, 2d: ImageNet Swin weights inflated to 3D, random")
    _choice(cfg, "bert_init", ("pretrained", "random"))
    _choice(cfg, "mask_pos", MASK_POS)
    from .models.lavender import TASK_TOK2ID
    if cfg.task_token is not None:
        _choice(cfg, "task_token", tuple(TASK_TOK2ID), "rows of the model's task-token table")
    if cfg.vis_backbone_init == "3d" and not cfg.path_ckpt and cfg.vis_backbone_size in ("base", "large") \
            and cfg.kinetics not in (400, 600):
        raise ConfigError(f"vis_backbone_init 3d loads Kinetics-400 or -600 Video Swin weights: set kinetics to "
                          f"400 or 600 (got {cfg.kinetics})")
    tasks = cfg.pretrain_tasks
    if not isinstance(tasks, list) or not tasks or any(t not in PRETRAIN_TASKS for t in tasks):
        raise ConfigError(f"pretrain_tasks must be a non-empty list of {list(PRETRAIN_TASKS)}, got {tasks!r}")
    parts = cfg.size_part.values() if isinstance(cfg.size_part, dict) else [cfg.size_part]
    if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in parts):
        raise ConfigError(f"size_part must be a number of parts >= 1, or a dict {{dataset: parts}}, "
                          f"got {cfg.size_part!r}")
    from .data.frames import parse_frame_column
    try:
        cfg.frame_column = parse_frame_column(cfg.frame_column)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def _choice(cfg, key, allowed, what=None):
    if cfg.get(key) not in allowed:
        raise ConfigError(f"{key} must be one of {list(allowed)}{f' ({what})' if what else ''}, got {cfg.get(key)!r}")


def for_task(cfg, entry):
    """A per-task view of a multi-task config: the entry's keys override the global ones, and keys
    given on the command line override the entry's (they apply to every task)."""
    sub = cfg.copy()
    sub.update({k: v for k, v in entry.items() if k not in cfg.cli_keys})
    sub.mark_user_keys(entry)
    return validate(sub)


def save_config(cfg, path):
    """Write the resolved config as JSON (atomically)."""
    from .fileio import atomic_json
    atomic_json(dict(cfg), path, indent=2, sort_keys=True, default=str)
