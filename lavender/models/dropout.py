"""Dropout with a fast CPU path, and the fusion encoder's attention that uses it.

PyTorch's CPU dropout draws one double from its Mersenne Twister per element, serially. Here each
element reads 16 bits of a 64-bit draw (four elements per draw): the forward pass of dropout on the
full-size MSRVTT-QA attention probabilities (2x12x280x280) takes 11.6 instead of 31.2 ms on 2 cores,
8x12x93x93 at the demo size 6.0 instead of 14.7 ms; the backward pass is the same product with the
saved mask (both timed in one process, medians of 15 calls). The drop probability is quantised to 1/65536
(0.1 -> 0.1000061) and kept values are scaled by 1/(1-p) of that probability, so the output stays
unbiased. Other devices use ``F.dropout`` (their generators are fast).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

FUSION_SDPA = "lavender_sdpa"  # the name the fusion encoder's "sdpa" attention is registered under
_fast = True


def set_fast_dropout(enabled: bool = True):
    """Use the fast CPU path (default) or PyTorch's dropout and SDPA everywhere (benchmarks compare them)."""
    global _fast
    _fast = bool(enabled)


def keep_mask(shape, p, device=None, generator=None):
    """(bool mask of `shape`, True with probability 1 - p'; p') where p' = round(65536 p) / 65536."""
    n = math.prod(shape)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    draws.random_(-2 ** 63, 2 ** 63 - 1, generator=generator)  # all 64 bits random (random_() leaves the top one 0)
    k = round(p * 65536)
    return (draws.view(torch.int16)[:n] >= k - 32768).view(shape), k / 65536


def fast_dropout(x, p, training=True):
    """``F.dropout(x, p, training)``; on the CPU with the fast mask of `keep_mask`."""
    if not (_fast and training and 0.0 < p < 1.0 and x.device.type == "cpu"):
        return F.dropout(x, p, training)
    keep, q = keep_mask(x.shape, p, x.device)
    if q == 0.0:  # p < 2^-17
        return x
    # the scaled mask as a float tensor, as PyTorch's CPU dropout keeps it: the backward is one product
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - q))


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`fast_dropout` (no parameters: state dicts are unchanged)."""

    def forward(self, x):
        return fast_dropout(x, self.p, self.training)


def use_fast_dropout(module):
    """Replace every ``nn.Dropout`` inside `module` by :class:`Dropout` of the same probability."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
    return module


def fusion_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' SDPA attention, except with attention dropout on the CPU: there SDPA falls back to
    its reference path (scores, softmax, dropout, product written out); this is that path with the
    fast dropout mask, and with its rounding (sqrt(scale) on q and on k)."""
    if not (_fast and dropout and query.device.type == "cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    s = math.sqrt(query.shape[-1] ** -0.5 if scaling is None else scaling)
    scores = torch.matmul(query * s, (key * s).transpose(-2, -1))
    if attention_mask is not None:
        scores = scores.add_(attention_mask)
    probs = fast_dropout(scores.softmax(-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


AttentionInterface.register(FUSION_SDPA, fusion_sdpa)
