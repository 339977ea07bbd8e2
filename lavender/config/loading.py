"""Reading a run's config: an `_args/*.json` file, then `--key value` overrides from the command line,
then the settings the checkpoint was trained with (the args.json beside `path_ckpt`), all checked
against the declarations (keys.py) before anything else happens."""
import argparse
import difflib
import json
import logging
import os
import sys

from ..errors import ConfigError
from ..fileio import atomic_json
from ..paths import repo_path
from .checks import check_path_ckpt, validate
from .reference import help_text
from .tables import DECLARED, DEFAULTS, from_checkpoint_keys

log = logging.getLogger("lavender")

# The original's get_args wrote its local BERT folder in place of the name into args.json.
ORIGINAL_BERT_DIR = os.path.normpath("./_models/huggingface_transformers/bert-base-uncased/")


class Config(dict):
    """A dict with attribute access (`cfg.size_batch`), as the original's args object.
    `cli_keys` / `user_keys` (not dict items) name the keys set on the command line / by the user at all
    (config file or command line)."""

    cli_keys = user_keys = frozenset()

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(unknown_key(key, self)) from None

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


def unknown_key(key, valid=DEFAULTS):
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {key!r}{hint}"


def default_config():
    """Every key at its declared default (lists and dicts copied)."""
    return Config({k: json.loads(json.dumps(v)) for k, v in DEFAULTS.items()})


def _no_duplicates(pairs, path):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ConfigError(f"{path}: key {k!r} is given twice (JSON keeps only the last; write it once)")
        out[k] = v
    return out


def read_json(path, what="config"):
    """A JSON object from `path`; ConfigError for a missing file, bad JSON, a repeated key or a non-object."""
    if not os.path.isfile(path):
        raise ConfigError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=lambda pairs: _no_duplicates(pairs, path))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a JSON object of keys, got a {type(data).__name__}")
    return data


def check_value(key, value, where):
    """A key's value from a file, checked and normalised by its declared type."""
    if key not in DECLARED:
        raise ConfigError(f"{where}: {unknown_key(key)}")
    return DECLARED[key].type.check(value, key, where)


def _file_keys(values, where):
    """Checked values of a file's keys; keys that only the command line may set are dropped with a warning."""
    out = {}
    for key, val in values.items():
        if key in DECLARED and DECLARED[key].cli_only:
            if val != DEFAULTS[key]:
                log.warning("%s: %s = %r ignored: it is taken only from the command line (--%s)", where, key, val, key)
            continue
        out[key] = check_value(key, val, where)
        if DECLARED[key].path and isinstance(out[key], str):
            out[key] = repo_path(out[key])
    return out


def _entries(values, path):
    """The multi-task entries of `datasets`, each checked: known keys, per-task scope, types."""
    entries = values.get("datasets")
    if not isinstance(entries, list):
        return
    for i, entry in enumerate(entries):
        where = f"{path}: datasets[{i}]"
        run_wide = sorted(k for k in entry if k in DECLARED and DECLARED[k].scope == "run")
        if run_wide:
            raise ConfigError(f"{where}: {run_wide} apply to the whole run and the shared model; set them outside "
                              f"'datasets'")
        entries[i] = _file_keys(entry, where)


def parse_overrides(argv):
    """`--key value` / `--key=value` pairs; a flag without value means true."""
    out, i = {}, 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: use --key value")
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val = argv[i + 1]
                i += 1
            else:
                val = "true"
        out[key] = val
        i += 1
    return out


def _parse_cli(overrides):
    out = {}
    for key, raw in overrides.items():
        if key not in DECLARED:
            raise ConfigError(unknown_key(key))
        decl = DECLARED[key]
        val = decl.type.check(decl.type.parse(raw, key), key, "command line")
        if decl.path and val:
            val = os.path.abspath(val)  # command-line paths are relative to the working directory
        out[key] = val
    return out


def load_config(argv=None, defaults=None, check_files=True):
    """Build the run config from `--config FILE` plus overrides (argv defaults to sys.argv[1:]).
    `check_files` false: a missing path_ckpt is left to the caller (a run's preflight lists it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--config", default=None)
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None)
    ap.add_argument("-h", "--help", action="store_true")
    known, rest = ap.parse_known_args(argv)
    if known.help:
        print(help_text())
        sys.exit(0)
    if known.local_rank is not None and "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(known.local_rank)  # torch.distributed.launch without --use-env

    cfg = default_config()
    cfg.update(defaults or {})
    from_file = {}
    if known.config:
        raw = read_json(known.config)
        raw.pop("config", None)  # a run's args.json records the file it was made from
        _entries(raw, known.config)
        from_file = _file_keys(raw, known.config)
        cfg.update(from_file)
    cfg["config"] = known.config
    cli = _parse_cli(parse_overrides(rest))
    cfg.update(cli)
    cfg.mark_user_keys(set(from_file) | set(cli), cli)
    _apply_eval_only(cfg, from_file, cli)
    if cfg.path_ckpt:
        apply_checkpoint_args(cfg)
    if cfg.tokenizer is None:
        cfg.tokenizer = cfg.txt_backbone
    where = known.config or "command line"
    warn_no_effect(cfg, where)
    for i, entry in enumerate(cfg.datasets or []):
        warn_no_effect(entry, f"{where}: datasets[{i}]")
    validate(cfg)
    if check_files:
        check_path_ckpt(cfg)
    return cfg


def _apply_eval_only(cfg, from_file, cli):
    """eval_only means size_epoch 0; a size_epoch > 0 from the same source or a later one contradicts it."""
    if not cfg.eval_only:
        return
    later = cli if "eval_only" in cli else {**from_file, **cli}
    if later.get("size_epoch", 0) > 0:
        raise ConfigError(f"eval_only true evaluates without training, but size_epoch {later['size_epoch']} asks "
                          f"for training: give one of them")
    cfg.size_epoch = 0


def warn_no_effect(cfg, where):
    """One warning per key accepted without effect that is set to another value than its default."""
    for key, decl in DECLARED.items():
        if decl.no_effect and key in cfg and cfg[key] != decl.default:
            log.warning("%s: %s = %r has no effect (accepted for compatibility): %s", where, key, cfg[key],
                        decl.no_effect)


def _legacy_key(key):
    """The original's renames of old args.json keys (update_args): vidswin* and backbone* -> vis_backbone*."""
    if "vidswin" in key:
        return key.replace("vidswin", "vis_backbone")
    if "backbone" in key and "vis_backbone" not in key and "txt_backbone" not in key:
        return key.replace("backbone", "vis_backbone")
    return key


def apply_checkpoint_args(cfg):
    """Take the `from_ckpt` keys ("eval" ones only for size_epoch 0) from the args.json beside `path_ckpt`,
    as the original's get_args; keys given on the command line keep their value. Logs every change."""
    path = os.path.join(os.path.dirname(cfg.path_ckpt), "args.json")
    if not os.path.isfile(path):
        return
    try:
        saved = read_json(path, "args.json")
    except ConfigError as e:
        raise ConfigError(f"{path} (the training config beside path_ckpt): cannot read it ({e})") from None
    wanted = from_checkpoint_keys(eval_only=cfg.size_epoch == 0)
    taken = {}
    for key, val in saved.items():
        key = _legacy_key(key)
        if isinstance(val, str) and os.path.normpath(val) == ORIGINAL_BERT_DIR:
            val = "bert-base-uncased"
        if key in wanted:
            taken[key] = check_value(key, val, path)
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


def for_task(cfg, entry):
    """A per-task view of a multi-task config: the entry's keys override the global ones, and keys
    given on the command line override the entry's (they apply to every task)."""
    sub = cfg.copy()
    sub.update({k: v for k, v in entry.items() if k not in cfg.cli_keys})
    sub.mark_user_keys(entry)
    return validate(sub)


def save_config(cfg, path):
    """Write the resolved config as JSON (atomically); keys taken only from the command line are left out,
    so that no file can carry them into a later run."""
    keep = {k: v for k, v in cfg.items() if not (k in DECLARED and DECLARED[k].cli_only)}
    atomic_json(keep, path, indent=2, sort_keys=True, default=str)
