"""Reading video files (mp4, webm, avi, mkv, gif, ...): the frames `_tools/extract_video-frame.py` keeps,
decoded with PyAV, OpenCV as the fallback."""
import os

import cv2

from ..errors import DataError
from .codec import encode_frame
from .sampling import extraction_indices
from .transforms import resize_shorter

__all__ = ["VIDEO_EXTS", "list_videos", "read_video_frames", "read_video_fields"]

VIDEO_EXTS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")

# a file OpenCV's ffmpeg cannot read is reported in our DataError; ffmpeg's own log lines would only add noise
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def list_videos(folder) -> list:
    """The video files directly inside `folder` (by extension, VIDEO_EXTS), sorted by name."""
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in VIDEO_EXTS)


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

