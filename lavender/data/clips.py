"""`ClipSampler`: a video's frame fields -> the clip a model sees (temporal sampling, decoding, transform)."""
from __future__ import annotations

import random as _random
from typing import List, Sequence

import numpy as np
import torch

from .codec import decode_frame
from .sampling import clip_starts, temporal_sample
from .transforms import ClipTransform

__all__ = ["ClipSampler"]


class ClipSampler:
    """A video's frame fields (base64 JPEG/PNG) -> the clip a model sees: `temporal_sample` to
    `size_frame` frames, decode, then the train or eval `ClipTransform`. Every frame store and
    `lavender.inference` (raw video files) make clips through this one path."""

    def __init__(self, size_frame: int, size_img: int, img_transform=("img_rand_crop",)):
        self.size_frame = int(size_frame)
        self.tf_train = ClipTransform(size_img, img_transform, train=True)
        self.tf_eval = ClipTransform(size_img, img_transform, train=False)

    def frames(self, fields: Sequence[str], train: bool = False, rng=None, file=None, key=None, start=None,
               cache=None) -> List:
        """Temporally sampled, decoded RGB uint8 frames (no spatial transform); `start`: see
        `temporal_sample`; `cache` {index: frame} is shared by the clips of one video."""
        idx = temporal_sample(len(fields), self.size_frame, train, rng, start=start)
        cache = {} if cache is None else cache
        for i in idx:  # padded indices (and frames shared by several clips) repeat: decode each once
            if i not in cache:
                cache[i] = decode_frame(fields[i], file=file, key=key, index=i)
        return [cache[i] for i in idx]

    def multi_clip(self, fields: Sequence[str], rng=None, file=None, key=None) -> torch.Tensor:
        """Every evaluation clip of `clip_starts` (multi-clip testing), stacked (C, T, 3, size_img, size_img)."""
        cache = {}
        return torch.stack([self.tf_eval(self.frames(fields, False, rng, file, key, start=s, cache=cache), rng)
                            for s in clip_starts(len(fields), self.size_frame)])

    def transform(self, frames: Sequence[np.ndarray], train: bool = False, rng=None) -> torch.Tensor:
        """Decoded frames -> (T, 3, size_img, size_img) float32, normalised."""
        return (self.tf_train if train else self.tf_eval)(frames, rng)

    def __call__(self, fields: Sequence[str], train: bool = False, rng=None, file=None, key=None) -> torch.Tensor:
        """The clip of a video's frame fields (`file`/`key` name it in errors)."""
        rng = rng if rng is not None else _random
        return self.transform(self.frames(fields, train, rng, file, key), train, rng)

