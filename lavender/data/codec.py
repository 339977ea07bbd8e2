"""Frames as a frame TSV stores them: which fields of a row are frames, and base64 JPEG/PNG decoding
and encoding.

Frame-column rule (docs/data.md#frame-columns). The original tools write ``vid \\t f1 ... fK`` (frames from
column 1) while the original downstream stores carry an extra field in column 1 (frames from
column 2). The start column is decided once per file (:func:`frame_start`): with
``frame_column="auto"`` it is column 1 if that field is a base64 JPEG ("/9j/") or PNG ("iVBOR") in
any of the file's first rows, else column 2 if that one is; an int `frame_column` forces it. Every
field from the start column on is a frame, in every row of the file, so a corrupt frame is an error
naming file, key and frame, never a row silently read from the next column. ``"swinbert"`` is
SwinBERT's captioning rule, decided by each row's field count, not its content:
``row[2:]`` if the row has at least ``size_frame`` + 2 fields, else the single image ``row[-1]``.
"""
from __future__ import annotations

import base64
import binascii
import io
from typing import List, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image

from ..config import DECLARED
from ..errors import DataError
from .tsv import head_rows

__all__ = ["is_frame_field", "parse_frame_column", "FRAME_PROBE_ROWS", "frame_start", "file_frame_start",
           "frame_fields", "frame_bytes", "decode_frame", "decode_jpegs", "encode_frame", "where"]

_FRAME_PREFIXES = ("/9j/", "iVBOR")  # base64 of the JPEG SOI marker / the PNG signature

cv2.setNumThreads(1)  # decoding runs inside DataLoader workers; avoid oversubscription


def where(file=None, key=None, index=None) -> str:
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
    """A `frame_column` setting -> "auto", "swinbert" or a column >= 1 (ConfigError, a ValueError, otherwise)."""
    return DECLARED["frame_column"].type.check(value, "frame_column", "frame_column")


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
                    f"{where(file)} (first key {first_rows[0][0]!r}); pass frame_column explicitly if the "
                    f"layout differs")


def file_frame_start(tsv_path, frame_column: Union[str, int] = "auto"):
    """:func:`frame_start` of a TSV file, from its first FRAME_PROBE_ROWS rows."""
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
        raise DataError(f"row {row[0]!r} has no frame fields from column {start} ({where(file)})")
    return out


def frame_bytes(b64: Union[str, bytes], file=None, key=None, index=None) -> bytes:
    """base64 field -> the encoded image bytes; invalid base64 -> DataError naming file/key/frame."""
    try:
        return base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise DataError(f"invalid base64 ({e}) at {where(file, key, index)}") from None


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
            raise DataError(f"cannot decode image ({type(e).__name__}: {e}) at {where(file, key, index)}") from None
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

