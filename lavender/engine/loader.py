"""Batches for one process, epoch by epoch, resumable at any batch.

`EpochLoader` is one dataset behind a `ShardSampler` and a DataLoader; `MetaLoader` interleaves several
of them (multi-task: each step serves one task, drawn by an RNG that every rank seeds alike). Both
have the interface the trainer uses (lavender.engine.protocol.Loader): `len()` (batches in a full epoch),
`set_epoch(e)`, iteration from the current position, `batches_served()`, and `state_dict()` /
`load_state_dict()` for resume.

A dataset given to a loader has `set_epoch(epoch)` (augmentation draws depend on it) and is a
map-style dataset. Each DataLoader gets its own seeded generator, so creating an iterator never draws
from the global RNG: a resumed run sees the same dropout draws as an uninterrupted one.
"""
import math
import random
import zlib

import torch
from torch.utils.data import DataLoader

from ..data.collate import seed_worker
from .sampler import ShardSampler


class EpochLoader:
    """One dataset for this rank: shuffled per epoch for training, each example once for evaluation."""

    def __init__(self, dataset, collate, batch_size, dist, *, shuffle, seed=0, segments=None, workers=0,
                 pin_memory=False):
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size
        self.workers, self.pin_memory, self.seed = workers, pin_memory, seed
        self.sampler = ShardSampler(len(dataset), dist.rank, dist.world, shuffle=shuffle, seed=seed,
                                    segments=segments, batch=batch_size)
        self.sampler.set_epoch(0, 0)
        self.n_batches = math.ceil(len(self.sampler) / batch_size)
        self.epoch, self.pos = 0, 0

    def __len__(self):
        return self.n_batches

    def set_epoch(self, epoch):
        """Start `epoch` from its first batch (no-op when already in it, e.g. after a resume)."""
        if epoch != self.epoch:
            self.epoch, self.pos = epoch, 0

    def batches_served(self):
        """Batches served so far in all epochs (epochs are numbered from 1), the latest included."""
        return (max(self.epoch, 1) - 1) * len(self) + self.pos

    def __iter__(self):
        self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, self.pos * self.batch_size)
        g = torch.Generator()
        g.manual_seed(zlib.crc32(f"{self.seed}/{self.epoch}".encode()))  # seed may be a str
        dl = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                        num_workers=self.workers, collate_fn=self.collate, pin_memory=self.pin_memory,
                        drop_last=False, worker_init_fn=seed_worker if self.workers else None, generator=g)
        for batch in dl:
            self.pos += 1
            yield batch

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state):
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


class MetaLoader:
    """Several named loaders as one (the original's multi-task MetaLoader).

    An epoch has as many steps as all members have batches; each step draws which member serves it:
    uniformly (the original), in proportion to the members' lengths, or in proportion to the lengths to the
    power 1 / `temperature` (temperature-scaled sampling: 1 is proportional, large tends to uniform), from an
    RNG seeded by (seed, epoch) — the same sequence on every rank without communication. A member that runs
    out starts its next pass; members keep their position across epochs. Batches get `batch["task"]`.
    """

    SAMPLING = ("uniform", "proportional", "temperature")

    def __init__(self, loaders, sampling, seed, temperature=None):  # the values: task_sampling, seed, task_temperature
        if sampling not in self.SAMPLING:
            raise ValueError(f"task_sampling must be one of {', '.join(self.SAMPLING)}, got {sampling!r}")
        if (sampling == "temperature") != (temperature is not None):
            raise ValueError("a temperature goes with task_sampling temperature, and only with it")
        empty = [name for name, ld in loaders.items() if len(ld) == 0]
        if empty:
            raise ValueError(f"no training batches for task(s) {empty}")
        self.loaders, self.sampling, self.seed, self.temperature = dict(loaders), sampling, seed, temperature
        self.epoch, self.pos = 0, 0
        self._iters = {}

    def __len__(self):
        return sum(len(ld) for ld in self.loaders.values())

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch, self.pos = epoch, 0

    def batches_served(self):
        return (max(self.epoch, 1) - 1) * len(self) + self.pos

    def schedule(self, epoch=None):
        """Which member serves each step of `epoch` (a list of names)."""
        names = list(self.loaders)
        weights = None
        if self.sampling == "proportional":
            weights = [len(self.loaders[n]) for n in names]
        elif self.sampling == "temperature":
            weights = [len(self.loaders[n]) ** (1.0 / self.temperature) for n in names]
        rng = random.Random(f"{self.seed}/{self.epoch if epoch is None else epoch}")
        return rng.choices(names, weights=weights, k=len(self))

    def _next(self, name):
        ld = self.loaders[name]
        it = self._iters.get(name)
        if it is not None:
            batch = next(it, None)
            if batch is not None:
                return batch
        if ld.epoch == 0 or ld.pos >= len(ld):
            ld.set_epoch(ld.epoch + 1)  # first use, or the member ran out: its next pass
        self._iters[name] = it = iter(ld)
        return next(it)

    def __iter__(self):
        self._iters = {}  # members restart from their saved positions (fresh after a resume)
        for name in self.schedule()[self.pos:]:
            batch = self._next(name)
            self.pos += 1
            if batch:  # an empty batch: every sample was a skipped bad video
                batch["task"] = name
            yield batch

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos,
                "members": {n: ld.state_dict() for n, ld in self.loaders.items()}}

    def load_state_dict(self, state):
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        for n, s in state["members"].items():
            self.loaders[n].load_state_dict(s)
