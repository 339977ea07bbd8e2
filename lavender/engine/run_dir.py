"""The output folder of a run: `{path_output}/_{task}_{YYYYmmddHHMMSS}/` with `args.json` and
`stdout.txt`, or the folder of the run that `--resume` continues."""
import glob
import logging
import os
import time

from ..config import save_config
from . import dist as D
from .checkpointing import RESUME_FILE
from .logs import setup_logging

log = logging.getLogger("lavender")


def find_resume(cfg):
    """The resume file `cfg.resume` names ("latest", a run folder or a file), or None to start fresh."""
    r = cfg.resume
    if not r:
        return None
    if r == "latest":
        cands = sorted(glob.glob(os.path.join(cfg.path_output, f"_{cfg.task}_*", RESUME_FILE)), key=os.path.getmtime)
        if not cands:
            log.warning("--resume latest: no %s under %s; starting fresh", RESUME_FILE, cfg.path_output)
            return None
        r = cands[-1]
    elif os.path.isdir(r):
        r = os.path.join(r, RESUME_FILE)
    if not os.path.isfile(r):
        raise FileNotFoundError(f"--resume: no resume state at {r}")
    return r


def stamped_dir(cfg, what=""):
    """`{path_output}/_{task}[_{what}]_{timestamp}`, the same name on every rank."""
    stamp = D.broadcast_object(time.strftime("%Y%m%d%H%M%S"))
    return os.path.join(cfg.path_output, f"_{cfg.task}_{what + '_' if what else ''}{stamp}")


def prepare_run_dir(cfg, dist, resume_file=None, what=""):
    """Create the run folder (or reuse the resumed run's), write args.json, log to stdout.txt."""
    run_dir = os.path.dirname(resume_file) if resume_file else stamped_dir(cfg, what)
    if dist.main:
        os.makedirs(run_dir, exist_ok=True)
        save_config(cfg, os.path.join(run_dir, "args.json"))
        setup_logging(cfg.log_level, True, os.path.join(run_dir, "stdout.txt"))
    D.barrier()
    log.info("output: %s", run_dir)
    return run_dir
