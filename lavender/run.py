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
from .tasks import build_task
from .tokenizer import load_tokenizer

__all__ = ["USER_ERRORS", "EXIT_USER_ERROR", "debug_requested", "main_guard", "user_message", "session", "run", "cli"]

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


@contextlib.contextmanager
def session(family, argv=None, overrides=None, check=None, **task_kw):
    """Yield (cfg, dist_info, task, model) for a task `family` (a registered family name). Bad input
    raises ConfigError/DataError naming the file and key, before any heavy work where possible.
    `overrides` are forced after the config file and command line; `check(cfg)` may refuse the config."""
    setup_logging("info", os.environ.get("RANK", "0") == "0")  # so what reading the config says is logged
    cfg = load_config(argv)
    if cfg.type and cfg.type != family:
        raise ConfigError(f"{cfg.config}: type {cfg.type!r}, but this script runs {family!r} tasks")
    cfg.update(overrides or {})
    cfg.mark_user_keys(overrides or {})
    if check:
        check(cfg)
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


def cli(family, argv=None):
    """`run` for an entry script: a user error is one line on stderr and exit status 2."""
    def main(args):
        run(family, args)
        return 0
    status = main_guard(main, argv)
    if status:
        sys.exit(status)
