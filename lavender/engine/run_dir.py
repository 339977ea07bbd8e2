"""The output folder of a run: `{path_output}/_{task}_{YYYYmmddHHMMSS}/` (a suffix when two runs start
in the same second) with `args.json` and `stdout.txt`, or the folder of the run that `--resume`
continues — only a run whose settings match the current ones on every key that changes training."""
import glob
import json
import logging
import os
import time

from ..errors import ConfigError
from ..config import RESUME_FREE_KEYS, save_config
from . import dist as D
from .run_files import RESUME_FILE
from .logs import setup_logging

log = logging.getLogger("lavender")

def check_writable(path_output):
    """Create `path_output` if needed and check that a run can write there (before any work starts)."""
    try:
        os.makedirs(path_output, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"path_output {path_output}: cannot create the output folder ({e.strerror})") from None
    if not os.access(path_output, os.W_OK | os.X_OK):
        raise ConfigError(f"path_output {path_output}: the output folder is not writable")


def _as_saved(cfg):
    """The config as args.json stores it (JSON types)."""
    return json.loads(json.dumps(dict(cfg), default=str))


def config_differences(saved, cfg):
    """Keys that change training and differ between a saved args.json dict and `cfg`."""
    now = _as_saved(cfg)
    keys = (set(saved) | set(now)) - RESUME_FREE_KEYS
    return sorted(k for k in keys if saved.get(k) != now.get(k))


def _run_dirs(cfg):
    """This task's run folders under path_output, oldest first."""
    dirs = [d for d in glob.glob(os.path.join(cfg.path_output, f"_{cfg.task}_*")) if os.path.isdir(d)
            and os.path.isfile(os.path.join(d, "args.json"))]
    return sorted(dirs, key=os.path.getmtime)


def find_resume(cfg):
    """The resume file `cfg.resume` names ("latest", a run folder or a file), or None to start fresh.
    The run's args.json must match `cfg` on every key that changes training."""
    r = cfg.resume
    if not r:
        return None
    if r == "latest":
        runs = _run_dirs(cfg)
        resumable = [d for d in runs if os.path.isfile(os.path.join(d, RESUME_FILE))]
        if not resumable:
            log.warning("--resume latest: no %s of a %s run under %s; starting fresh", RESUME_FILE, cfg.task,
                        cfg.path_output)
            return None
        newer = runs[runs.index(resumable[-1]) + 1:]
        if newer:
            raise ConfigError(f"--resume latest: the newest {cfg.task} run {newer[-1]} wrote no resume state "
                              f"(killed before its first save); the latest resumable run is the older "
                              f"{resumable[-1]}. Pass --resume {resumable[-1]} to continue that one, or start "
                              f"again without --resume")
        r = resumable[-1]
    path = os.path.join(r, RESUME_FILE) if os.path.isdir(r) else r
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--resume: no resume state at {path}")
    args = os.path.join(os.path.dirname(path), "args.json")
    if os.path.isfile(args):
        with open(args) as f:
            diff = config_differences(json.load(f), cfg)
        if diff:
            raise ConfigError(f"--resume {r}: that run was started with other settings for {', '.join(diff)} "
                              f"(see {args}); resume with the same settings, or start a new run")
    return path


def _create_unique(base):
    """mkdir `base`, or `base_1`, `base_2`, ... if taken (atomic: two runs never share a folder)."""
    path, n = base, 0
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}_{n}"


def prepare_run_dir(cfg, dist, resume_file=None, what=""):
    """The run folder: the resumed run's (its args.json kept, the resume logged) or a new one with
    args.json; the log also goes to its stdout.txt."""
    if resume_file:
        run_dir = os.path.dirname(resume_file)
    else:
        stamp = time.strftime("%Y%m%d%H%M%S")
        base = os.path.join(cfg.path_output, f"_{cfg.task}_{what + '_' if what else ''}{stamp}")
        run_dir = D.broadcast_object(_create_unique(base) if dist.main else None)
    if dist.main:
        setup_logging(cfg.log_level, True, os.path.join(run_dir, "stdout.txt"))
        if resume_file:
            log.info("resuming this run (%s); its args.json is kept", resume_file)
        else:
            save_config(cfg, os.path.join(run_dir, "args.json"))
    D.barrier()
    log.info("output: %s", run_dir)
    return run_dir
