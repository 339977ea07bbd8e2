"""Console/file logging, progress bars and metric formatting for runs."""
import json
import logging
import logging.handlers
import os

from ..fileio import append_text, atomic_write

log = logging.getLogger("lavender")


def setup_logging(level="info", main=True, path=None):
    """INFO (or `level`) on the main process, WARNING elsewhere, to the console; `path` (a run's
    stdout.txt) replaces the previous run's file handler and first receives the records logged since
    logging was set up without a file (e.g. what reading the config said)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.setLevel(getattr(logging, level.upper()) if main else logging.WARNING)
    log.propagate = False
    if not any(type(h) is logging.StreamHandler for h in log.handlers):
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    buffers = [h for h in log.handlers if isinstance(h, logging.handlers.MemoryHandler)]
    if path is None:
        if not buffers:
            log.addHandler(logging.handlers.MemoryHandler(10000, flushLevel=logging.CRITICAL + 1))
        return
    for h in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(h)
        h.close()
    fh = logging.FileHandler(path)
    fh.setFormatter(fmt)
    for b in buffers:
        b.setTarget(fh)
        b.flush()
        log.removeHandler(b)
        b.close()
    log.addHandler(fh)


def progress(enabled, **kw):
    """A tqdm bar on the main process; None elsewhere."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(dynamic_ncols=True, **kw)


def fmt_metrics(d):
    """`k=v` pairs, floats with 4 decimals."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


class StepLog:
    """`log_steps.jsonl`: one JSON record per logged optimizer step (main process only)."""

    def __init__(self, run_dir, main=True):
        self.path, self.main = os.path.join(run_dir, "log_steps.jsonl"), main

    def append(self, record):
        if self.main:
            append_text(self.path, json.dumps(record) + "\n")

    def trim(self, last_step):
        """Drop records after `last_step` (a resumed run logs those steps again)."""
        if not (self.main and os.path.exists(self.path)):
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
        with atomic_write(self.path, "w") as f:
            f.writelines(keep)
