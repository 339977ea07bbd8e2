"""The files a run saves: per-epoch weights, the best epoch's copy, and the resume state."""
import logging
import os
import shutil

from ..fileio import atomic_torch_save, atomic_write
from ..models.weights import load_torch_file

log = logging.getLogger("lavender")

RESUME_FILE = "resume.pt"


class RunFiles:
    """`ckpt_violet_{name}_{epoch}.pt` (a flat state_dict on CPU, loadable by the original code),
    `ckpt_violet_{name}_best.pt` (a copy of the best epoch's file) and `resume.pt` (everything a
    killed run needs to continue). Only the main process writes."""

    def __init__(self, run_dir, name, main=True):
        self.run_dir, self.name, self.main = run_dir, name, main

    def weights_path(self, epoch):
        return os.path.join(self.run_dir, f"ckpt_violet_{self.name}_{epoch}.pt")

    def save_weights(self, model, epoch, best=False):
        if not self.main:
            return
        path = self.weights_path(epoch)
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        if best:  # a file copy, not a second serialisation
            with open(path, "rb") as src, atomic_write(self.weights_path("best")) as dst:
                shutil.copyfileobj(src, dst)
        log.info("saved %s%s", path, " (best so far)" if best else "")

    def save_resume(self, state):
        if self.main:
            atomic_torch_save(state, os.path.join(self.run_dir, RESUME_FILE))

    @staticmethod
    def load_resume(path, trust=False):
        """The resume state (tensors, numbers, strings and containers: never runs code from the file
        unless `trust`, see `lavender.models.weights.load_torch_file`)."""
        return load_torch_file(path, trust=trust)
