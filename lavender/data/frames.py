"""Frames: which TSV fields are frames, base64 JPEG/PNG decode/encode, reading video files,
temporal sampling (SPEC 4.1) and the spatial transforms (SPEC 4.2).

Frame-column rule (SPEC 3.1 / 9 #5). The original tools write ``vid \\t f1 … fK`` (frames from
column 1) while the original downstream stores carry an extra field in column 1 (frames from
column 2). The start column is decided once per file (:func:`frame_start`): with
``frame_column="auto"`` it is column 1 if that field is a base64 JPEG ("/9j/") or PNG ("iVBOR") in
any of the file's first rows, else column 2 if that one is; an int `frame_column` forces it. Every
field from the start column on is a frame, in every row of the file, so a corrupt frame is an error
naming file, key and frame, never a row silently read from the next column. ``"swinbert"`` is
SwinBERT's captioning rule (SPEC §3.4), decided by each row's field count, not its content:
``row[2:]`` if the row has at least ``size_frame`` + 2 fields, else the single image ``row[-1]``.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import os
import random as _random
from typing import List, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image

from .errors import DataError

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMG_TRANSFORMS", "is_frame_field", "frame_fields", "frame_start",
    "file_frame_start", "parse_frame_column", "FRAME_PROBE_ROWS", "frame_bytes",
    "decode_frame", "decode_jpegs", "encode_frame", "temporal_sample", "clip_starts", "extraction_indices",
    "read_video_frames", "read_video_fields", "normalize_img_transform", "ClipTransform", "ClipSampler",
    "resize_shorter", "to_images",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_TRANSFORMS = ("img_rand_crop", "img_center_crop", "pad_resize", "vid_rand_crop")
_FRAME_PREFIXES = ("/9j/", "iVBOR")  # base64 of the JPEG SOI marker / the PNG signature

cv2.setNumThreads(1)  # decoding runs inside DataLoader workers; avoid oversubscription
# a file OpenCV's ffmpeg cannot read is reported in our DataError; ffmpeg's own log lines would only add noise
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


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


def parse_frame_column(value) -> Union[str, int]:
    """A `frame_column` setting -> "auto", "swinbert" or a column >= 1 (ValueError otherwise)."""
    if value in ("auto", "swinbert"):
        return value
    col = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(col, bool) or not isinstance(col, int) or col < 1:
        raise ValueError(f"frame_column must be 'auto', 'swinbert' or a column number >= 1 (column 0 is the key), "
                         f"got {value!r}")
    return col


FRAME_PROBE_ROWS = 5  # rows read to decide where a file's frames start


def frame_start(first_rows: Sequence[Sequence[str]], frame_column: Union[str, int] = "auto", file=None):
    """The column where frames start in every row of a file, from its first rows (module doc)."""
    col = parse_frame_column(frame_column)
    if col == "swinbert":
        return col
    if col != "auto" or not first_rows:
        return 1 if col == "auto" else col
    for start in (1, 2):
        if any(len(r) > start and is_frame_field(r[start]) for r in first_rows):
            return start
    raise DataError(f"no base64 JPEG/PNG frames in column 1 or 2 of the first {len(first_rows)} rows of "
                    f"{_where(file)} (first key {first_rows[0][0]!r}); pass frame_column explicitly if the "
                    f"layout differs")


def file_frame_start(tsv_path, frame_column: Union[str, int] = "auto"):
    """:func:`frame_start` of a TSV file, from its first FRAME_PROBE_ROWS rows."""
    from .tsv import head_rows
    return frame_start(head_rows(tsv_path, FRAME_PROBE_ROWS), frame_column, file=tsv_path)


def frame_fields(row: Sequence[str], start, file=None, size_frame: int = None) -> List[str]:
    """The base64 frame fields of a TSV row whose file's frames start at column `start` (or "swinbert",
    which needs `size_frame`)."""
    if start == "swinbert":
        if size_frame is None:
            raise ValueError("frame_column 'swinbert' needs size_frame")
        start = 2 if len(row) >= int(size_frame) + 2 else len(row) - 1
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


def temporal_sample(n: int, size_frame: int, train: bool, rng=None, pad: bool = True, start=None) -> List[int]:
    """Indices of the frames to use out of `n` (SPEC 4.1).

    N == F: all. N > F: C = ceil(N/F); train start ~ U{0..C-1} (``rng.randint``), end =
    min(start + (F-1)C, N-1); eval start 0, end N-1; index k = round(start + k(end-start)/(F-1))
    (Python banker's rounding); F == 1 takes round((start+end)/2). A given `start` (one of
    :func:`clip_starts`, multi-clip testing) takes the train rule with that start.
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
    if start is not None or train:
        start = rng.randint(0, C - 1) if start is None else int(start)
        end = min(start + (F - 1) * C, n - 1)
    else:
        start, end = 0, n - 1
    if F == 1:
        return [int(round((start + end) / 2))]
    return [int(round(start + k * (end - start) / (F - 1))) for k in range(F)]


def clip_starts(n: int, size_frame: int) -> List:
    """Starts of the clips that multi-clip testing averages (SPEC 4.1): 0..C-1, C = ceil(N/F), when a row
    has more frames than F; else [None], the one evaluation clip."""
    F = int(size_frame)
    return list(range(math.ceil(n / F))) if n > F else [None]


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

    PyAV first, OpenCV as fallback. Raises DataError with the reason of each backend (or: no such
    file, empty file).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError("no such file")
    if os.path.getsize(path) == 0:
        raise DataError("empty file (0 bytes)")
    errors = []
    for name, fn in (("pyav", _pyav_read), ("opencv", _cv2_read)):
        try:
            return fn(path, sample)
        except Exception as e:  # any backend failure: try the next one, report all
            errors.append(f"{name}: {type(e).__name__}: {e}".strip())
    zero = all("zero frames" in e for e in errors)
    raise DataError(f"{'zero frames' if zero else 'unreadable'} ({'; '.join(errors)})")


def read_video_fields(path, sample: int, resize: int = None):
    """A video file -> (`sample` frames as base64 JPEG fields, N decoded frames): what
    `_tools/extract_video-frame.py` stores per video, so frames read from a file and frames read from
    a TSV the tools built go through the same pixels (`resize`: shorter side, default kept)."""
    frames, n = read_video_frames(path, sample)
    if resize:
        frames = [resize_shorter(f, resize) for f in frames]
    return [encode_frame(f) for f in frames], n


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


def to_images(clip: torch.Tensor) -> np.ndarray:
    """A normalised clip (T, 3, H, W) -> RGB uint8 frames (T, H, W, 3): what the model saw, for display."""
    x = clip.detach().float().cpu() * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = x + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
