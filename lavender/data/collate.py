"""Batch stacking helpers and DataLoader worker seeding."""
from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

__all__ = ["seed_worker", "collate_dicts", "stack_clips"]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python/NumPy from torch's per-worker seed.

    torch gives every worker of every epoch a distinct ``initial_seed`` (base seed drawn from the
    loader's generator + worker id), so augmentation draws differ across workers and epochs
    (docs/original.md#9-sampling-and-seeding-over-processes).
    """
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)


def stack_clips(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    """(T,3,S,S) clips -> (B,T,3,S,S); clips with fewer frames are padded by repeating the last."""
    T = max(c.shape[0] for c in clips)
    out = [c if c.shape[0] == T else torch.cat([c, c[-1:].expand(T - c.shape[0], *c.shape[1:])], 0)
           for c in clips]
    return torch.stack(out, 0)


def collate_dicts(batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Dict samples -> dict batch: tensors stacked (clips via `stack_clips`), numbers -> tensors,
    anything else kept as a list. ``None`` samples (skipped bad videos) are dropped."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return {}
    out: Dict[str, Any] = {}
    for k in batch[0]:
        vals = [b[k] for b in batch]
        v0 = vals[0]
        if isinstance(v0, torch.Tensor):
            out[k] = stack_clips(vals) if v0.dim() == 4 else torch.stack(vals, 0)
        elif isinstance(v0, (bool, int, float)) and not isinstance(v0, str):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out
