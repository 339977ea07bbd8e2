"""One sampler for training and evaluation, in one process or many.

Training: a fresh shuffle per epoch (seeded by seed + epoch, so every rank agrees and a resumed run
sees the same order; the original repeated one shuffle every epoch), padded so that every rank runs
the same number of steps, and able to start part-way through an epoch (resume).
Evaluation: each example exactly once over all ranks (no padding duplicates in the metrics).
"""
import math

import torch
from torch.utils.data import Sampler


class ShardSampler(Sampler):
    def __init__(self, n, rank=0, world=1, shuffle=False, seed=0, pad=None):
        self.n, self.rank, self.world = n, rank, world
        self.shuffle, self.seed = shuffle, seed
        self.pad = shuffle if pad is None else pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        """Epoch number (changes the shuffle) and how many of this rank's samples to skip (resume)."""
        self.epoch, self.start = epoch, start

    def _indices(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.pad and self.world > 1 and order:
            total = math.ceil(self.n / self.world) * self.world
            order += order[: total - self.n]
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self._indices()[self.start:])

    def __len__(self):
        if self.pad and self.world > 1:
            per_rank = math.ceil(self.n / self.world)
        else:
            per_rank = len(range(self.rank, self.n, self.world))
        return max(per_rank - self.start, 0)
