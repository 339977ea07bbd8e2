"""Frames: which TSV fields are frames, base64 JPEG/PNG decode/encode, reading video files,
temporal sampling (SPEC 4.1) and the spatial transforms (SPEC 4.2).

Frame-column rule (SPEC 3.1 / 9 #5). The original tools write ``vid \\t f1 … fK`` (frames from
column 1) while the original downstream stores carry an extra field in column 1 (frames from
column 2). With ``frame_column="auto"`` each row is inspected: frames start at column 1 if that
field is a base64 JPEG ("/9j/") or PNG ("iVBOR"), else at column 2 if that one is; every field
from the start column on is a frame (a corrupt frame there is an error, never silently dropped).
An int `frame_column` forces the start column.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import random as _random
from typing import List, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image

from .errors import DataError

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMG_TRANSFORMS", "is_frame_field", "frame_fields", "frame_bytes",
    "decode_frame", "decode_jpegs", "encode_frame", "temporal_sample", "extraction_indices", "read_video_frames",
    "normalize_img_transform", "ClipTransform", "resize_shorter",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_TRANSFORMS = ("img_rand_crop", "img_center_crop", "pad_resize", "vid_rand_crop")
_FRAME_PREFIXES = ("/9j/", "iVBOR")  # base64 of the JPEG SOI marker / the PNG signature

cv2.setNumThreads(1)  # decoding runs inside DataLoader workers; avoid oversubscription


def _where(file=None, key=None, index=None) -> str:
    parts = []
    if file is not None:
        parts.append(f"file {file}")
    if key is not None:
        parts.append(f"key {key!r}")
    if index is not None:
        parts.append(f"frame {index}")
    return ", ".join(parts) if parts else "frame"


def is_frame_field(s: str) -> bool:
    """True if `s` looks like a base64 JPEG or PNG."""
    return s.startswith(_FRAME_PREFIXES)


def frame_fields(row: Sequence[str], frame_column: Union[str, int] = "auto", file=None) -> List[str]:
    """The base64 frame fields of a TSV row (see module doc for the rule)."""
    if frame_column != "auto":
        start = int(frame_column)
        if start < 1:
            raise ValueError("frame_column must be >= 1 (column 0 is the key)")
    elif len(row) > 1 and is_frame_field(row[1]):
        start = 1
    elif len(row) > 2 and is_frame_field(row[2]):
        start = 2
    else:
        raise DataError(f"no base64 JPEG/PNG frames in column 1 or 2 of row {row[0]!r} "
                        f"({_where(file)}, {len(row)} fields); pass frame_column explicitly if the layout differs")
    out = list(row[start:])
    if not out:
        raise DataError(f"row {row[0]!r} has no frame fields from column {start} ({_where(file)})")
    return out


def frame_bytes(b64: Union[str, bytes], file=None, key=None, index=None) -> bytes:
    """base64 field -> the encoded image bytes; invalid base64 -> DataError naming file/key/frame."""
    try:
        return base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise DataError(f"invalid base64 ({e}) at {_where(file, key, index)}") from None


def decode_frame(b64: Union[str, bytes], file=None, key=None, index=None) -> np.ndarray:
    """base64 JPEG/PNG -> RGB uint8 array (H, W, 3). Corrupt data -> DataError naming file/key/frame."""
    data = frame_bytes(b64, file, key, index)
    img = None
    # cv2 silently grey-fills truncated JPEGs, so only trust it when the end marker is present
    if data[:2] != b"\xff\xd8" or data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if arr is not None and arr.ndim == 3:
            img = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if img is None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                img = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise DataError(f"cannot decode image ({type(e).__name__}: {e}) at {_where(file, key, index)}") from None
    return img


def decode_jpegs(frames: Sequence[torch.Tensor], device="cuda") -> List[torch.Tensor]:
    """Encoded JPEGs (1-D uint8 tensors, e.g. from ``VideoStore.encoded_frames``) -> RGB uint8 (3, H, W)
    tensors on ``device``, decoded in one batch by torchvision (nvJPEG on a GPU)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("JPEG decoding on cuda needs a CUDA GPU; torch.cuda.is_available() is False")
    return decode_jpeg(list(frames), mode=ImageReadMode.RGB, device=device)


def encode_frame(img, quality: int = 75) -> str:
    """RGB uint8 array / PIL image -> base64 JPEG text (PIL, default quality 75 as the original tools)."""
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img, dtype=np.uint8))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def temporal_sample(n: int, size_frame: int, train: bool, rng=None, pad: bool = True) -> List[int]:
    """Indices of the frames to use out of `n` (SPEC 4.1).

    N == F: all. N > F: C = ceil(N/F); train start ~ U{0..C-1} (``rng.randint``), end =
    min(start + (F-1)C, N-1); eval start 0, end N-1; index k = round(start + k(end-start)/(F-1))
    (Python banker's rounding); F == 1 takes round((start+end)/2).
    N < F (the original crashes, SPEC 9 #4): all N frames, then — with `pad` — the last index
    repeated up to F so every clip of a store has F frames. ``pad=False`` gives the original
    image behaviour (a 1-frame row stays a 1-frame clip).
    """
    if n < 1:
        raise ValueError("temporal_sample: no frames")
    F = int(size_frame)
    if n == F:
        return list(range(n))
    if n < F:
        idx = list(range(n))
        return idx + [n - 1] * (F - n) if pad else idx
    rng = rng if rng is not None else _random
    C = math.ceil(n / F)
    if train:
        start = rng.randint(0, C - 1)
        end = min(start + (F - 1) * C, n - 1)
    else:
        start, end = 0, n - 1
    if F == 1:
        return [int(round((start + end) / 2))]
    return [int(round(start + k * (end - start) / (F - 1))) for k in range(F)]


def extraction_indices(n_frames: int, sample: int) -> List[int]:
    """Frames kept by the extraction tool (SPEC 8): int(step*(i+1)), step = N/(K+1), i < K.

    Evenly spaced, endpoints excluded. With N < K some indices repeat (always < N).
    """
    step = n_frames / (sample + 1)
    return [int(step * (i + 1)) for i in range(sample)]


def _pyav_read(path: str, sample: int):
    import av

    def decode(want):
        kept, n = {}, 0
        with av.open(path) as c:
            if not c.streams.video:
                raise DataError("no video stream")
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            hint = s.frames or 0
            for fr in c.decode(s):
                if want is not None and n in want:
                    kept[n] = fr.to_ndarray(format="rgb24")
                n += 1
        return kept, n, hint

    with av.open(path) as c:
        hint = c.streams.video[0].frames if c.streams.video else 0
    want = set(extraction_indices(hint, sample)) if hint else None
    kept, n, _ = decode(want)
    if n == 0:
        raise DataError("zero frames decoded")
    idx = extraction_indices(n, sample)
    if want is None or n != hint:  # the header's frame count was missing or wrong: second pass
        kept, n2, _ = decode(set(idx))
        if n2 != n:
            raise DataError(f"frame count changed between passes ({n} vs {n2})")
    return [kept[i] for i in idx], n


def _cv2_read(path: str, sample: int):
    def decode(want):
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise DataError("OpenCV cannot open the file")
        kept, n = {}, 0
        try:
            while True:
                ok, fr = cap.read()
                if not ok:
                    break
                if n in want:
                    kept[n] = cv2.cvtColor(fr, cv2.COLOR_BGR2RGB)
                n += 1
        finally:
            cap.release()
        return kept, n

    _, n = decode(set())
    if n == 0:
        raise DataError("zero frames decoded")
    idx = extraction_indices(n, sample)
    kept, _ = decode(set(idx))
    return [kept[i] for i in idx], n


def read_video_frames(path, sample: int):
    """Decode a video file; return (frames at `extraction_indices(N, sample)` as RGB uint8 arrays, N).

    PyAV first, OpenCV as fallback. Raises DataError with the reason of each backend.
    """
    path = str(path)
    errors = []
    for name, fn in (("pyav", _pyav_read), ("opencv", _cv2_read)):
        try:
            return fn(path, sample)
        except Exception as e:  # any backend failure: try the next one, report all
            errors.append(f"{name}: {type(e).__name__}: {e}".strip())
    zero = all("zero frames" in e for e in errors)
    raise DataError(f"{'zero frames' if zero else 'unreadable'} ({'; '.join(errors)})")


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
    ``img_rand_crop`` = resize shorter side + random crop *per frame* (original behaviour, SPEC 9 #14),
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
