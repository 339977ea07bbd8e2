"""What every entry script does: config -> process group -> tokenizer -> task -> model -> trainer.

    if __name__ == "__main__":
        cli("qaoe")        # a bad input ends as one `error: ...` line (lavender.cli.main_guard)
"""
import contextlib
import logging
import os
import sys

from ..cli import main_guard
from ..errors import ConfigError
from ..config import load_config
from ..tokenizer import load_tokenizer
from . import dist as D
from .logs import setup_logging
from .rng import seed_everything
from .run_dir import check_writable
from .trainer import Trainer

log = logging.getLogger("lavender")


@contextlib.contextmanager
def session(family, argv=None, overrides=None, **task_kw):
    """Yield (cfg, dist_info, task, model) for a task `family` (lavender.tasks.FAMILIES). Bad input
    raises ConfigError/DataError naming the file and key, before any heavy work where possible.
    `overrides` are forced after the config file and command line."""
    from ..models.pretrained import create_model
    from ..tasks import build_task
    setup_logging("info", os.environ.get("RANK", "0") == "0")  # so what reading the config says is logged
    cfg = load_config(argv)
    if cfg.type and cfg.type != family:
        raise ConfigError(f"{cfg.config}: type {cfg.type!r}, but this script runs {family!r} tasks")
    cfg.update(overrides or {})
    cfg.mark_user_keys(overrides or {})
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
