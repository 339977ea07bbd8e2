"""One sampler for training and evaluation, in one process or many.

Training: a fresh shuffle per epoch (seeded by seed + epoch, so every rank agrees and a resumed run
sees the same order; the original repeated one shuffle every epoch), padded so that every rank runs
the same number of steps, and able to start part-way through an epoch (resume).
Evaluation: each example exactly once over all ranks (no padding duplicates in the metrics).

Segments (pretraining: one per dataset part, videos and images): `segments` lists consecutive
index-range lengths; they are visited in order, shuffled within, and each rank's share of a segment
is padded (with its own samples) to a multiple of `batch`, so no batch mixes two segments.
Evaluation then sees a few duplicates, which `merge_records` drops by index.
"""
import math

import torch
from torch.utils.data import Sampler


class ShardSampler(Sampler):
    def __init__(self, n, rank=0, world=1, shuffle=False, seed=0, pad=None, segments=None, batch=1):
        self.n, self.rank, self.world = n, rank, world
        self.shuffle, self.seed = shuffle, seed
        self.pad = shuffle if pad is None else pad
        self.segments = list(segments) if segments else [n]
        if sum(self.segments) != n:
            raise ValueError(f"segments {self.segments} do not add up to {n} samples")
        self.batch = batch if segments else 1
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        """Epoch number (changes the shuffle) and how many of this rank's samples to skip (resume)."""
        self.epoch, self.start = epoch, start

    def _segment(self, offset, n, g):
        order = (torch.randperm(n, generator=g) + offset).tolist() if self.shuffle else list(range(offset, offset + n))
        if self.pad and self.world > 1 and order:
            total = math.ceil(n / self.world) * self.world
            order += order[: total - n]
        mine = order[self.rank::self.world]
        if self.batch > 1 and mine:
            mine += (mine * self.batch)[: -len(mine) % self.batch]
        return mine

    def _indices(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        out, offset = [], 0
        for n in self.segments:
            out += self._segment(offset, n, g)
            offset += n
        return out

    def __iter__(self):
        return iter(self._indices()[self.start:])

    def __len__(self):
        total = 0
        for n in self.segments:
            if self.pad and self.world > 1:
                mine = math.ceil(n / self.world)
            else:
                mine = len(range(self.rank, n, self.world))
            total += -(-mine // self.batch) * self.batch if mine else 0
        return max(total - self.start, 0)
