"""The composition root: config -> process group -> tokenizer -> task -> model -> trainer, and the guard
that turns a user's mistake into one `error:` line. Entry scripts call it; nothing in the package
imports it.

    if __name__ == "__main__":
        cli("qaoe")        # main_qaoe_mlm.py: a bad input ends as one `error: ...` line, exit status 2

    sys.exit(main_guard(main))      # a tool's main(argv) -> exit status, under the same guard

The errors that describe bad input (ConfigError, DataError and its CheckpointError, FileNotFoundError,
PermissionError, ...) already name the file, key or row and say what to do; the traceback would only
hide that line. ``--debug`` (anywhere on the command line) or ``LAVENDER_DEBUG=1`` keeps it.
"""
import contextlib
import json
import logging
import os
import sys

from .config import load_config
from .engine import dist as D
from .engine.logs import setup_logging
from .engine.rng import deterministic_mode, seed_everything
from .engine.run_dir import check_writable
from .engine.trainer import Trainer
from .errors import ConfigError, DataError, OutputError
from .models.factory import create_model
from .preflight import missing_inputs, require_inputs
from .tasks import build_task
from .tokenizer import load_tokenizer

__all__ = ["USER_ERRORS", "EXIT_USER_ERROR", "debug_requested", "main_guard", "user_message", "configure", "session",
           "run", "cli", "train", "check"]

log = logging.getLogger("lavender")

# FloatingPointError: a training loss that is not finite, stopped with where and how to go on
USER_ERRORS = (ConfigError, DataError, OutputError, FileNotFoundError, PermissionError, IsADirectoryError,
               NotADirectoryError, FloatingPointError)
EXIT_USER_ERROR = 2  # as argparse for a bad command line


def debug_requested(argv) -> bool:
    return "--debug" in argv or os.environ.get("LAVENDER_DEBUG", "").strip() not in ("", "0")


def user_message(err) -> str:
    """The message of a user error. One raised in a DataLoader worker arrives re-raised with the
    worker's traceback in its text ("Caught DataError in DataLoader worker process 0 ..."): keep only
    the original message, so the user sees the same line as with ``n_workers 0``."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        cls = type(err)
        last_frame = text.rfind("\n  File ")
        for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
            at = text.find(name, last_frame)
            if at >= 0:
                return text[at + len(name):].strip()
    return text


def main_guard(main, argv=None) -> int:
    """Run ``main(argv)`` (argv without ``--debug``) and return its exit status; a user error is
    printed as ``error: <message>`` on stderr and gives EXIT_USER_ERROR, unless debugging is asked for."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    try:
        return main([a for a in argv if a != "--debug"])
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {user_message(e)}", file=sys.stderr)
        return EXIT_USER_ERROR


def configure(family, argv=None, overrides=None, check=None):
    """(family, cfg) of a command line: the config read and checked, and every input it names there
    (the preflight: MissingInputs lists all that are not). `family` None: the config's `type`.
    `overrides` are forced after the config file and command line; `check(cfg)` may refuse the config."""
    setup_logging("info", os.environ.get("RANK", "0") == "0")  # so what reading the config says is logged
    cfg = load_config(argv, check_files=False)
    if family is None:
        if not cfg.type:
            raise ConfigError(f"{cfg.config or 'the config'} names no task type (type: qaoe, qamc, retrieval, ...)")
        family = cfg.type
    if cfg.type and cfg.type != family:
        raise ConfigError(f"{cfg.config}: type {cfg.type!r}, but this script runs {family!r} tasks")
    cfg.update(overrides or {})
    cfg.mark_user_keys(overrides or {})
    if check:
        check(cfg)
    inputs = require_inputs(family, cfg)
    if cfg.check:
        log.info("check: all %d inputs found (%s)", len(inputs), ", ".join(i.path for i in inputs))
    return family, cfg


@contextlib.contextmanager
def session(family, argv=None, overrides=None, check=None, **task_kw):
    """Yield (cfg, dist_info, task, model) for a task `family` (a registered family name; None: the
    config's type). Bad input raises ConfigError/DataError naming the file and key, before any heavy
    work where possible; every missing input at once (MissingInputs). With `check` the run ends after
    that check (SystemExit 0). `overrides` are forced after the config file and command line; `check(cfg)`
    may refuse the config."""
    family, cfg = configure(family, argv, overrides, check)
    if cfg.check:
        raise SystemExit(0)
    d = D.init_distributed()
    try:
        setup_logging(cfg.log_level, d.main)
        if d.main:
            check_writable(cfg.path_output)
        seed_everything(cfg.seed)
        tok = load_tokenizer(cfg.tokenizer)
        task = build_task(family, cfg, tok, **task_kw)
        model = create_model(cfg, heads=task.heads())
        log.info("task %s (%s), world size %d, device %s, %.1fM parameters", cfg.task, type(task).__name__,
                 d.world, d.device, sum(p.numel() for p in model.parameters()) / 1e6)
        with deterministic_mode(cfg.deterministic):
            yield cfg, d, task, model
        stores = task.stores()
        skipped = sum(s.n_skipped for s in stores)
        if skipped:
            reasons = [r for s in stores for r in s.skip_reasons.items()]
            log.warning("skipped %d bad/missing videos (skip_bad): %s", skipped, reasons[:5])
    finally:
        D.cleanup()


def run(family, argv=None):
    """Train and/or evaluate a task of `family` as the command line says; returns the log dict (rank 0)."""
    with session(family, argv) as (cfg, d, task, model):
        return Trainer(cfg, task, model, d).fit()


def _argv(config, overrides):
    """A command line of a config (a file's path, or a dict of keys) and keyword overrides: keys set from
    Python are command-line values (relative paths: from the working directory)."""
    keys = dict(overrides)
    argv = []
    if isinstance(config, dict):
        keys = {**config, **keys}
    elif config is not None:
        argv = ["--config", os.fspath(config)]
    for k, v in keys.items():
        argv += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    return argv


def train(config=None, **overrides):
    """Train and/or evaluate `config` (a config file, e.g. "_args/args_demo-qaoe.json", or a dict of keys)
    with `overrides` (any config key, e.g. size_epoch=1); the family is the config's `type`. Returns the
    log dict (log.json). Bad input raises ConfigError/DataError (MissingInputs lists every missing input)."""
    return run(None, _argv(config, overrides))


def check(config=None, **overrides):
    """The inputs `train(config, **overrides)` would read that are missing (lavender.paths.Input, each with
    `.what`, `.path` and `.source()`); empty when everything is there."""
    cfg = load_config(_argv(config, overrides), check_files=False)
    if not cfg.type:
        raise ConfigError(f"{cfg.config or 'the config'} names no task type (type: qaoe, qamc, retrieval, ...)")
    return missing_inputs(cfg.type, cfg)


def cli(family, argv=None):
    """`run` for an entry script: a user error is one line on stderr and exit status 2."""
    def main(args):
        run(family, args)
        return 0
    status = main_guard(main, argv)
    if status:
        sys.exit(status)
