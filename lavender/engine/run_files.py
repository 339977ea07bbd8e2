"""The files a run saves: per-epoch weights, the best epoch's weights, and the resume state; which epoch
files stay on disk (`keep_best`, `keep_last`, docs/tasks.md#what-a-run-writes)."""
import glob
import logging
import os
import re
import shutil

from ..fileio import atomic_torch_save, atomic_write
from ..models.weights import load_torch_file

log = logging.getLogger("lavender")

RESUME_FILE = "resume.pt"


class RunFiles:
    """`ckpt_violet_{name}_{epoch}.pt` (a flat state_dict on CPU, loadable by the original code; `.safetensors`
    with `fmt`), `ckpt_violet_{name}_best.pt` (the best epoch's weights) and `resume.pt` (everything a killed
    run needs to continue). `keep_last` epoch files are kept besides the best (-1: all, 0: none); the best
    is a hard link to its epoch file while that exists, so keeping both costs no second copy. Only the main
    process writes."""

    def __init__(self, run_dir, name, main=True, keep_best=True, keep_last=-1, fmt="pt"):
        self.run_dir, self.name, self.main = run_dir, name, main
        self.keep_best, self.keep_last, self.fmt = keep_best, keep_last, fmt

    @classmethod
    def from_config(cls, run_dir, cfg, main=True):
        return cls(run_dir, cfg.task, main, keep_best=cfg.keep_best, keep_last=cfg.keep_last, fmt=cfg.ckpt_format)

    def weights_path(self, epoch):
        return os.path.join(self.run_dir, f"ckpt_violet_{self.name}_{epoch}.{self.fmt}")

    def kept_epochs(self, has_best=True):
        """How many epoch files stay (-1: all). Without a best file (keep_best false, or a run that
        evaluates no val metric, so no epoch is ever best) the last epoch is always kept."""
        if self.keep_last < 0:
            return -1
        return self.keep_last if self.keep_best and has_best else max(self.keep_last, 1)

    def save_weights(self, model, epoch, best=False, has_best=True):
        """Write epoch `epoch`'s weights as far as the retention keeps them (see `kept_epochs`)."""
        if not self.main:
            return
        n, best = self.kept_epochs(has_best), best and self.keep_best
        if n == 0 and not best:
            return
        path = self.weights_path(epoch if n else "best")
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if self.fmt == "safetensors":
            from safetensors.torch import save
            data = save({k: v.contiguous().clone() for k, v in state.items()})  # tied weights: one copy each
            with atomic_write(path, "wb") as f:
                f.write(data)
        else:
            atomic_torch_save(state, path)
        if best and n:
            _link_or_copy(path, self.weights_path("best"))
        log.info("saved %s%s", path, " (best so far)" if best else "")
        self.prune(n)

    def epoch_files(self):
        """{epoch: path} of the epoch weight files in the run folder."""
        pat = re.compile(rf"ckpt_violet_{re.escape(self.name)}_(\d+)\.{self.fmt}$")
        found = {}
        for p in glob.glob(os.path.join(glob.escape(self.run_dir), f"ckpt_violet_*.{self.fmt}")):
            m = pat.match(os.path.basename(p))
            if m:
                found[int(m.group(1))] = p
        return found

    def prune(self, keep_last):
        """Remove the epoch files older than the last `keep_last` (-1: keep all)."""
        if keep_last < 0:
            return
        files = self.epoch_files()
        for epoch in sorted(files)[:max(len(files) - keep_last, 0)]:
            os.remove(files[epoch])

    def save_resume(self, state):
        if self.main:
            atomic_torch_save(state, os.path.join(self.run_dir, RESUME_FILE))

    def remove_resume(self):
        """A finished run needs no resume state (keep_resume false)."""
        path = os.path.join(self.run_dir, RESUME_FILE)
        if self.main and os.path.exists(path):
            os.remove(path)
            log.info("removed %s: the run is complete (--keep_resume true keeps it)", path)

    @staticmethod
    def load_resume(path, trust=False):
        """The resume state (tensors, numbers, strings and containers: never runs code from the file
        unless `trust`, see `lavender.models.weights.load_torch_file`)."""
        return load_torch_file(path, trust=trust)


def _link_or_copy(src, dst):
    """`dst` with the content of `src`: a hard link (no second copy on disk), else a file copy; atomic."""
    tmp = dst + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:  # a file system without hard links: a copy, with the checks of every other write
        with open(src, "rb") as f, atomic_write(dst) as out:
            shutil.copyfileobj(f, out)
        return
    os.replace(tmp, dst)
