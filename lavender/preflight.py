"""The preflight: before any heavy work, every input a run reads — frame stores or folders of videos,
annotation files, captioning yamls, pretraining parts, the BERT folder, Video Swin weights, `path_ckpt`,
the vocabulary — is looked for at once, and the missing ones are listed together, each with where it comes
from (docs/reliability.md#preflight). Task families declare their inputs (`Task.required_inputs(cfg)`),
the model factory its weights (`required_weights`); `--check true` runs only this.
"""
import os

from .errors import DataError
from .models.factory import required_weights
from . import paths
from .paths import Input, resolve_vocab
from .tasks import task_class

__all__ = ["MissingInputs", "run_inputs", "missing_inputs", "require_inputs"]


class MissingInputs(DataError):
    """Inputs of a run are missing; the message lists them all, with their sources."""

    def __init__(self, missing, where=""):
        self.missing = list(missing)
        lines = [f"{len(self.missing)} input(s){' of ' + where if where else ''} not found:"]
        by_source = {}  # inputs that come from the same place are listed together, the place once
        for i in self.missing:
            by_source.setdefault(i.source(), []).append(i)
        for source, group in by_source.items():
            lines += [f"  - {i.what}: {i.path}" for i in group] + [f"      from: {source}"]
        super().__init__("\n".join(lines))


def run_inputs(family, cfg):
    """Every input a run of `family` with `cfg` reads before training (each path once)."""
    inputs = list(task_class(family, cfg).required_inputs(cfg)) + required_weights(cfg)
    try:
        resolve_vocab(cfg.tokenizer)
    except FileNotFoundError:
        inputs.append(Input(f"vocabulary of tokenizer {cfg.tokenizer!r}",
                            os.path.join(paths.MODELS_DIR, str(cfg.tokenizer), "vocab.txt"), "vocab"))
    return list({i.path: i for i in inputs}.values())


def missing_inputs(family, cfg):
    """The inputs of `run_inputs` that are not there."""
    return [i for i in run_inputs(family, cfg) if not i.exists()]


def require_inputs(family, cfg):
    """Raise MissingInputs listing every missing input (nothing is raised when all are there); returns the
    inputs checked."""
    inputs = run_inputs(family, cfg)
    missing = [i for i in inputs if not i.exists()]
    if missing:
        raise MissingInputs(missing, cfg.get("config") or "")
    return inputs
