"""Spatial transforms of a clip (docs/original.md#spatial-transforms): resize, crop or pad, normalise."""
from __future__ import annotations

import random as _random
from typing import List, Sequence

import numpy as np
import torch
from PIL import Image

from ..config import choices_of

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMG_TRANSFORMS", "normalize_img_transform", "resize_shorter",
           "ClipTransform", "to_images"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_TRANSFORMS = choices_of("img_transform")


def resize_shorter(img, size: int):
    """PIL/np image -> PIL image whose shorter side is `size` (bilinear)."""
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img, dtype=np.uint8))
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    return img.resize((nw, nh), Image.BILINEAR)


def normalize_img_transform(img_transform) -> List[str]:
    """A config value -> list of transform names (a bare string, as in the tgif configs, is one name)."""
    names = [img_transform] if isinstance(img_transform, str) else list(img_transform)
    if not names:
        raise ValueError("img_transform is empty")
    bad = [t for t in names if t not in IMG_TRANSFORMS]
    if bad:
        raise ValueError(f"unknown img_transform {bad}; choose from {list(IMG_TRANSFORMS)}")
    return names


class ClipTransform:
    """Frames (list of RGB uint8 arrays (H, W, 3), or uint8 tensors (3, H, W) on any device, e.g. decoded
    on a GPU by `decode_jpegs`) -> float32 tensor (T, 3, size_img, size_img), normalised, on their device.

    Train: each frame draws its transform name with ``rng.choice`` (as the original);
    ``img_rand_crop`` = resize shorter side + random crop *per frame* (original behaviour,
    docs/original.md#13-a-different-random-crop-in-every-frame),
    ``vid_rand_crop`` = the same but one crop position for the whole clip, ``img_center_crop`` =
    resize + center crop, ``pad_resize`` = pad to square (black) + resize.
    Eval: ``pad_resize`` if the list is exactly ["pad_resize"], else resize + center crop.
    """

    def __init__(self, size_img: int, img_transform=("img_rand_crop",), train: bool = False):
        self.size = int(size_img)
        self.names = normalize_img_transform(img_transform)
        self.train = bool(train)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def _resize_shorter_t(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as Fn
        h, w = x.shape[-2:]
        s = self.size
        if min(h, w) == s:
            return x.float()
        nh, nw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        return Fn.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False,
                              antialias=True)

    def _pad_resize_t(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as Fn
        h, w = x.shape[-2:]
        m = max(h, w)
        top, left = (m - h) // 2, (m - w) // 2
        x = Fn.pad(x.float(), (left, m - w - left, top, m - h - top))
        return Fn.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)

    def __call__(self, frames: Sequence[np.ndarray], rng=None) -> torch.Tensor:
        rng = rng if rng is not None else _random
        if not self.train:
            names = ["pad_resize" if self.names == ["pad_resize"] else "img_center_crop"] * len(frames)
        else:
            names = [rng.choice(self.names) for _ in frames]
        s = self.size
        out = []
        clip_crop = None
        for img, name in zip(frames, names):
            x = img if torch.is_tensor(img) else torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
            x = x.unsqueeze(0)
            if name == "pad_resize":
                out.append(self._pad_resize_t(x))
                continue
            x = self._resize_shorter_t(x)
            h, w = x.shape[-2:]
            if name == "img_rand_crop":
                top, left = rng.randint(0, h - s), rng.randint(0, w - s)
            elif name == "vid_rand_crop":
                if clip_crop is None:  # one position for every frame of the clip
                    clip_crop = (rng.randint(0, h - s), rng.randint(0, w - s))
                top, left = min(clip_crop[0], h - s), min(clip_crop[1], w - s)
            else:  # center crop (torchvision rounding)
                top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
            out.append(x[..., top:top + s, left:left + s])
        x = torch.cat(out, 0).clamp_(0, 255).div_(255.0)
        return ((x - self.mean.to(x.device)) / self.std.to(x.device)).contiguous()


def to_images(clip: torch.Tensor) -> np.ndarray:
    """A normalised clip (T, 3, H, W) -> RGB uint8 frames (T, H, W, 3): what the model saw, for display."""
    x = clip.detach().float().cpu() * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = x + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
