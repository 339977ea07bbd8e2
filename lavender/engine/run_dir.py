"""The output folder of a run: `{path_output}/_{task}_{YYYYmmddHHMMSS}/` (a suffix when two runs start
in the same second) with `args.json` and `stdout.txt`, or the folder of the run that `--resume`
continues — only a run whose settings match the current ones on every key that changes training.
`--resume latest` orders a task's training runs by their start (the folder name), never by modification
time, and a start that fails before its first step removes its folder (docs/reliability.md#resume)."""
import contextlib
import json
import logging
import os
import re
import shutil
import time

from ..errors import ConfigError
from ..config import RESUME_FREE_KEYS, save_config
from ..fileio import remove_orphaned_temp_files
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


_STARTED = re.compile(r"(?P<stamp>\d{14})(?:_(?P<n>\d+))?")


def run_start(name, task):
    """(start time, same-second number) of a training run folder named `_{task}_{YYYYmmddHHMMSS}[_{n}]`;
    None for any other name (an evaluation folder `_{task}_eval_*`, another task's, a file)."""
    prefix = f"_{task}_"
    m = _STARTED.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
    return (m["stamp"], int(m["n"] or 0)) if m else None


def _trains(run_dir):
    """Whether the run in `run_dir` trains (its args.json); evaluation-only runs have nothing to resume."""
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("size_epoch", 1) != 0 and not saved.get("eval_only")


def _run_dirs(cfg):
    """This task's training run folders under path_output, in the order they were started."""
    try:
        names = os.listdir(cfg.path_output)
    except OSError:
        return []
    runs = [(run_start(n, cfg.task), os.path.join(cfg.path_output, n)) for n in names]
    return [d for start, d in sorted(r for r in runs if r[0]) if os.path.isdir(d) and _trains(d)]


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
        _remove_orphans(cfg, run_dir if resume_file else None)
    D.barrier()
    log.info("output: %s", run_dir)
    return run_dir


def _remove_orphans(cfg, resumed=None):
    """Temporary files of writes that a kill interrupted: every one in the run being resumed, and those of
    dead writers in the task's other runs."""
    removed = remove_orphaned_temp_files(resumed, all_temp=True) if resumed else []
    for d in _run_dirs(cfg):
        if d != resumed:
            removed += remove_orphaned_temp_files(d)
    if removed:
        log.info("removed %d temporary file(s) (%.1f MB) of interrupted writes: %s", len(removed),
                 sum(n for _, n in removed) / 2**20, ", ".join(p for p, _ in removed[:3]))


@contextlib.contextmanager
def discard_if_failed(run_dir, main, started):
    """Remove `run_dir` when the block fails (an exception, not an interrupt) and `started()` is false:
    a start that failed before its first step leaves no folder for `--resume latest` to trip over."""
    try:
        yield
    except Exception:
        if main and not started() and not os.path.exists(os.path.join(run_dir, RESUME_FILE)):
            for h in [h for h in log.handlers if getattr(h, "baseFilename", "").startswith(run_dir + os.sep)]:
                log.removeHandler(h)
                h.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            log.info("removed %s: the run failed before its first step", run_dir)
        raise
