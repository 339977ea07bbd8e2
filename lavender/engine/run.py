"""What every entry script does: config -> process group -> tokenizer -> task -> model -> trainer."""
import contextlib
import logging
import os
import sys
import time

from ..config import ConfigError, load_config, save_config
from ..data.errors import DataError
from ..tokenizer import load_tokenizer
from . import dist as D
from .logs import setup_logging
from .rng import seed_everything
from .trainer import Trainer

log = logging.getLogger("lavender")


@contextlib.contextmanager
def session(task_cls, argv=None, overrides=None, **task_kw):
    """Yield (cfg, dist_info, task, model) ready to use; clear one-line errors for bad input.
    `overrides` are forced after the config file and command line (e.g. evaluation-only scripts)."""
    try:
        cfg = load_config(argv)
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    cfg.update(overrides or {})
    d = D.init_distributed()
    setup_logging(cfg.log_level, d.main)
    seed_everything(cfg.seed)
    try:
        tok = load_tokenizer(cfg.tokenizer)
        task = task_cls(cfg, tok, **task_kw)
        from ..models.pretrained import create_model
        model = create_model(cfg, head_size=task.head_size)
        log.info("task %s (%s), world size %d, device %s, %.1fM parameters", cfg.task, task_cls.__name__,
                 d.world, d.device, sum(p.numel() for p in model.parameters()) / 1e6)
        yield cfg, d, task, model
        stores = getattr(task, "stores", None) or [getattr(task, "store", None)]  # pretraining: one per part
        skipped = sum(s.n_skipped for s in stores if s is not None)
        if skipped:
            reasons = [r for s in stores if s is not None for r in s.skip_reasons.items()]
            log.warning("skipped %d bad/missing videos (skip_bad): %s", skipped, reasons[:5])
    except (DataError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(f"error: {e}")
    finally:
        D.cleanup()


def run(task_cls, argv=None):
    """Train and/or evaluate `task_cls` as the command line says; returns the log dict (rank 0)."""
    with session(task_cls, argv) as (cfg, d, task, model):
        return Trainer(cfg, task, model, d).fit()


def eval_output_dir(cfg, d, what="eval"):
    """`{path_output}/_{task}_{what}_{timestamp}` with the config written to it (rank 0)."""
    stamp = D.broadcast_object(time.strftime("%Y%m%d%H%M%S"))
    out = os.path.join(cfg.path_output, f"_{cfg.task}_{what}_{stamp}")
    if d.main:
        os.makedirs(out, exist_ok=True)
        save_config(cfg, os.path.join(out, "args.json"))
    return out
