"""`VideoFolderStore`: a folder of video files read as a frame store (config key `video_dir`,
docs/data.md#video-files-as-the-frame-store), and `open_store`, which picks the store a config names.

Each file is read the way `_tools/extract_video-frame.py` reads it for a TSV — decoded with PyAV
(OpenCV as the fallback), `video_sample` frames kept at the tool's indices, each JPEG-encoded at quality
75 — and then sampled and transformed by the same `ClipSampler` as a TSV row. So a clip from a file is
the clip of the TSV the tools build from that file, pixel for pixel; the JPEG round trip is kept on
purpose (its cost: docs/performance.md#video-files-against-a-frame-tsv). Decoding happens where the
clip is asked for, i.e. in the DataLoader workers. With `cache_dir` the extracted frames of a file are
written there once (one small text file per video, named by the file's path, size, mtime and the
sample count) and read back instead of decoding again.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Optional

from ..errors import DataError
from ..fileio import atomic_write
from ..paths import Input
from .video_files import VIDEO_EXTS, list_videos, read_video_fields
from .tsv_index import id2lineidx_path_for, lineidx_path_for
from .video_store import FrameStore, VideoStore

__all__ = ["VideoFolderStore", "open_store", "video_ids", "store_inputs", "tsv_inputs"]


def video_ids(folder) -> Dict[str, str]:
    """{video id (file name without extension): path} of the video files in `folder`; two files with the
    same id (e.g. a.mp4 and a.webm) are a DataError naming both."""
    if not os.path.isdir(folder):
        raise DataError(f"video_dir {folder} is not a folder (a folder of {', '.join(VIDEO_EXTS[:5])}, ... files)")
    out, clash = {}, []
    for p in list_videos(folder):
        vid = os.path.splitext(os.path.basename(p))[0]
        if vid in out:
            clash.append(f"{os.path.basename(out[vid])} and {os.path.basename(p)}")
        out[vid] = p
    if clash:
        raise DataError(f"video_dir {folder}: files with the same video id (the name without extension): "
                        f"{'; '.join(clash[:5])}; rename or move one of each")
    return out


class VideoFolderStore(FrameStore):
    """The video files of `folder` as a frame store (module doc); `sample` frames are extracted per file
    (0: size_frame). Its rows (`row(i)`, pretraining) are its videos by name, or those `select` names."""

    def __init__(self, folder, size_frame: int, size_img: int, img_transform=("img_rand_crop",), sample: int = 0,
                 cache_dir: Optional[str] = None, skip_bad: bool = False):
        super().__init__(size_frame, size_img, img_transform, skip_bad)
        self.path = str(folder)
        self.files = video_ids(self.path)
        self.sample = int(sample) or self.size_frame
        self.cache_dir = str(cache_dir) if cache_dir else None
        self._rows = sorted(self.files)

    def select(self, ids: List[str]) -> None:
        """Serve by row only the videos `ids`, in that order (each must be in the folder)."""
        missing = [v for v in ids if v not in self.files]
        if missing:
            raise DataError(f"video_dir {self.path} has no file for {missing[:5]} ({len(missing)} in all)")
        self._rows = list(ids)

    def __contains__(self, video_id) -> bool:
        return video_id in self.files

    def __len__(self) -> int:
        return len(self.files)

    def ids(self) -> List[str]:
        return sorted(self.files)

    def n_rows(self) -> int:
        return len(self._rows)

    def row(self, i: int):
        vid = self._rows[i]
        return vid, self.frame_strings(vid)

    def frame_strings(self, video_id: str) -> List[str]:
        """The file's extracted frames as base64 JPEG fields (DataError naming the file if it cannot be read)."""
        path = self.files.get(video_id)
        if path is None:
            raise DataError(f"no video file for id {video_id!r} in {self.path}")
        cached = self._cache_path(path)
        if cached and os.path.exists(cached):
            with open(cached) as f:
                fields = f.read().split()
            if len(fields) == self.sample:
                return fields
        try:
            fields, _ = read_video_fields(path, self.sample)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        if cached:
            with atomic_write(cached, "w") as f:
                f.write("\n".join(fields) + "\n")
        return fields

    def _cache_path(self, path):
        """The cache file of `path` in its current state (a changed file gets another name)."""
        if not self.cache_dir:
            return None
        st = os.stat(path)
        key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.sample}".encode()
        stem = os.path.splitext(os.path.basename(path))[0]
        return os.path.join(self.cache_dir, f"{stem}.{hashlib.sha1(key).hexdigest()[:16]}.b64")

    def __repr__(self) -> str:
        return f"VideoFolderStore({self.path!r}, {len(self.files)} videos, sample={self.sample})"


def open_store(data_dir, dataset, size_frame, size_img, img_transform=("img_rand_crop",), frame_column="auto",
               skip_bad=False, video_dir=None, video_sample=0, video_cache=None) -> FrameStore:
    """The frame store a config names: the video files of `video_dir` when it is set, else
    `{data_dir}/img_{dataset}.tsv`."""
    if video_dir:
        return VideoFolderStore(video_dir, size_frame, size_img, img_transform, sample=video_sample,
                                cache_dir=video_cache, skip_bad=skip_bad)
    return VideoStore(data_dir, dataset, size_frame, size_img, img_transform, frame_column=frame_column,
                      skip_bad=skip_bad)


def tsv_inputs(tsv, what="frame store", kind="frames"):
    """The inputs a frame TSV needs: the TSV, then (once it is there) its index."""
    if not os.path.exists(tsv):
        return [Input(what, tsv, kind)]
    return [Input(f"index of {os.path.basename(tsv)}", id2lineidx_path_for(tsv), "index",
                  alternatives=(lineidx_path_for(tsv),), tsv=tsv)]


def store_inputs(data_dir, dataset, video_dir=None):
    """What `open_store` with these settings reads (lavender.paths.Input)."""
    if video_dir:
        return [Input("video files (video_dir)", video_dir, "videos")]
    return tsv_inputs(os.path.join(str(data_dir), f"img_{dataset}.tsv"))
