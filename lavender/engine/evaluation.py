"""Evaluation: what a task's `evaluate` receives (`EvalContext`), the generic batch loop it offers,
and the per-epoch metric log with best-epoch tracking (`log.json`, `best.json`)."""
import dataclasses
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..fileio import atomic_json
from . import dist as D
from .logs import progress
from .precision import autocast

log = logging.getLogger("lavender")


def to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def merge_records(per_rank):
    """Concatenate per-batch record dicts from all ranks, sorted by example index, duplicates dropped."""
    batches = [b for rank in per_rank for b in rank]
    if not batches:
        return {}
    merged = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    if "index" in merged:
        _, first = np.unique(merged["index"], return_index=True)
        merged = {k: v[first] for k, v in merged.items()}
    return merged


def _to_numpy(v):
    if torch.is_tensor(v):
        v = v.detach()
        return (v.float() if v.is_floating_point() else v).cpu().numpy()
    return np.asarray(v)


@dataclass
class EvalContext:
    """Everything a task's evaluation may use: the model (in eval mode), the process group, the run's
    precision, the run folder (None: write nothing) and the epoch being evaluated (0: zero-shot)."""
    model: torch.nn.Module
    dist: D.DistInfo
    precision: str = "fp32"
    out_dir: str = None
    epoch: int = 0

    @property
    def device(self):
        return self.dist.device

    @property
    def main(self):
        """Whether this is the process that writes files and logs."""
        return self.dist.main

    def autocast(self):
        return autocast(self.precision, self.device)

    def with_precision(self, precision):
        """The same context under another precision (e.g. retrieval's fp32 evaluation)."""
        return dataclasses.replace(self, precision=precision)

    def progress(self, total, desc):
        """A progress bar on the main process (call .update(n), .close()); None elsewhere."""
        return progress(self.main, total=total, desc=desc)

    def gather(self, obj):
        """[obj of every process] (this process's alone when there is one)."""
        return D.all_gather_object(obj)

    def broadcast(self, obj):
        """The main process's `obj` on every process."""
        return D.broadcast_object(obj)

    @torch.no_grad()
    def records(self, step, loader, desc="eval"):
        """Run `step(model, batch)` -> dict of per-example arrays over every batch of `loader`; return the
        records of all ranks merged in example order (each example once)."""
        self.model.eval()
        out = []
        for batch in progress(self.dist.main, iterable=loader, total=len(loader), desc=desc, leave=False) or loader:
            if not batch:
                continue
            with self.autocast():
                rec = step(self.model, to_device(batch, self.device))
            out.append({k: _to_numpy(v) for k, v in rec.items()})
        return merge_records(D.all_gather_object(out))


SPLIT_TAGS = {"val": "vl", "test": "ts"}


class EpochLog:
    """`log.json` (one list per key, `epoch` first) and the best epoch of each tracked val metric.

    `tracked` maps a label to a metric name of `summarize` ("" is the run's main metric, whose best
    epoch is copied to `*_best.pt`; multi-task runs also track each task's). Best is chosen among
    trained epochs only (their checkpoints exist), as the original's argmax over trained epochs.
    """

    def __init__(self, tracked, run_dir=None, main=True):
        self.tracked, self.run_dir, self.main = dict(tracked), run_dir, main
        self.data = {}
        self.best = {label: {"metric": m, "value": None, "epoch": None} for label, m in self.tracked.items()}

    def add(self, epoch, row):
        """Append one epoch's row; return the labels whose val metric is the best so far."""
        if self.main:
            self.data.setdefault("epoch", []).append(epoch)
            for k, v in row.items():
                self.data.setdefault(k, []).append(_json_number(v))
            if self.run_dir:
                atomic_json(self.data, os.path.join(self.run_dir, "log.json"))
        improved = []
        for label, b in self.best.items():
            v = row.get(f"{b['metric']}_vl")
            if epoch > 0 and v is not None and math.isfinite(v) and (b["value"] is None or v > b["value"]):
                b.update(value=float(v), epoch=epoch)
                improved.append(label)
        if improved and self.main and self.run_dir:
            atomic_json(self.best, os.path.join(self.run_dir, "best.json"))
        return improved

    def report(self):
        """Log the best val value of every tracked metric and the test value at that epoch."""
        if not self.main or "epoch" not in self.data:
            return
        for b in self.best.values():
            if b["epoch"] is None:
                continue
            i = len(self.data["epoch"]) - 1 - self.data["epoch"][::-1].index(b["epoch"])
            test = self.data.get(f"{b['metric']}_ts", [None] * (i + 1))[i]
            log.info("best val %s = %.4f @ epoch %d%s", b["metric"], b["value"], b["epoch"],
                     "" if test is None else f" (test {test:.4f})")

    def state_dict(self):
        return {"data": self.data, "best": self.best}

    def load_state_dict(self, state):
        self.data, self.best = state["data"], state["best"]


def _json_number(v):
    """NaN/inf are not JSON: logged as null."""
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
