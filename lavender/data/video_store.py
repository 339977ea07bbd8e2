"""Frame stores: video id -> sampled, transformed clip. `FrameStore` is what they share, `VideoStore` reads a
frame TSV (`lavender.data.video_folder.VideoFolderStore` reads video files)."""
from __future__ import annotations

import collections
import os
import random as _random
from typing import Dict, List, Optional, Union

import torch

from ..errors import DataError
from .clips import ClipSampler
from .codec import file_frame_start, frame_bytes, frame_fields
from .sampling import temporal_sample
from .tsv import TSVFile
from .tsv_index import id2lineidx_path_for, lineidx_path_for

__all__ = ["FrameStore", "VideoStore"]


class FrameStore:
    """What every frame store shares: a video id -> its frame fields (base64 JPEGs, as a frame TSV row
    holds them) -> the clip a model sees, through the one `ClipSampler`; skipped bad videos are counted.
    A store implements `frame_strings(video_id)`, `row(i)` (id and fields of its i-th video), `ids()`,
    `n_rows()`, `__contains__` and `__len__`. With ``skip_bad=True`` a missing/corrupt video returns None
    and is counted in ``n_skipped`` / ``skip_reasons`` (per process: each DataLoader worker counts its
    own) instead of raising DataError."""

    path = ""

    def __init__(self, size_frame: int, size_img: int, img_transform=("img_rand_crop",), skip_bad: bool = False):
        self.size_frame = int(size_frame)
        self.size_img = int(size_img)
        self.skip_bad = bool(skip_bad)
        self.sampler = ClipSampler(size_frame, size_img, img_transform)
        self.n_skipped = 0
        self.skip_reasons: Dict[str, str] = collections.OrderedDict()

    def frames(self, video_id: str, train: bool = False, rng=None, fields=None, start=None, cache=None) -> List:
        """Temporally sampled, decoded RGB uint8 frames (no spatial transform); `start`: see temporal_sample."""
        fields = self.frame_strings(video_id) if fields is None else fields
        return self.sampler.frames(fields, train, rng, self.path, video_id, start=start, cache=cache)

    def encoded_frames(self, video_id: str, train: bool = False, rng=None) -> List[torch.Tensor]:
        """The temporally sampled frames still encoded (1-D uint8 tensors), for decoding elsewhere
        (``frames.decode_jpegs`` on a GPU); same sampling as `frames`."""
        fields = self.frame_strings(video_id)
        idx = temporal_sample(len(fields), self.size_frame, train, rng if rng is not None else _random)
        return [torch.frombuffer(bytearray(frame_bytes(fields[i], self.path, video_id, i)), dtype=torch.uint8)
                for i in idx]

    def skip(self, key, err: DataError) -> None:
        """Count `key` as a skipped bad item (skip_bad), or raise `err`."""
        if not self.skip_bad:
            raise err
        self.n_skipped += 1
        self.skip_reasons[key] = str(err)

    def clip(self, video_id: str, train: bool, rng=None, fields=None, multi_clip=False) -> Optional[torch.Tensor]:
        """(T, 3, size_img, size_img) float32, or None (skip_bad) for a bad/missing video. `multi_clip`
        (evaluation): every clip of `clip_starts`, stacked (C, T, 3, size_img, size_img)."""
        rng = rng if rng is not None else _random
        try:
            if multi_clip:
                fields = self.frame_strings(video_id) if fields is None else fields
                return self.sampler.multi_clip(fields, rng, self.path, video_id)
            frames = self.frames(video_id, train, rng, fields)
            return self.sampler.transform(frames, train, rng)
        except DataError as e:
            self.skip(video_id, e)
            return None

    def clip_row(self, i: int, train: bool, rng=None):
        """(video id, clip) of the store's `i`-th video (pretraining reads parts by row: no id index needed)."""
        try:
            key, fields = self.row(i)
        except DataError as e:
            self.skip(f"row {i}", e)
            return None, None
        return key, self.clip(key, train, rng, fields)


class VideoStore(FrameStore):
    """Frame store ``{data_dir}/img_{dataset}.tsv`` (+ ``img_{dataset}.id2lineidx.pkl`` or ``.lineidx``).

    ``clip(video_id, train, rng)`` -> float32 (T, 3, size_img, size_img) with T = size_frame
    (rows with fewer frames are padded by repeating the last one; 1-frame images with
    ``size_frame == 1`` give T = 1). Frames start at the same column in every row (``frame_column``,
    decided once when the store is opened: see codec.py). Bad videos: see `FrameStore`.
    """

    def __init__(self, data_dir, dataset: str, size_frame: int, size_img: int,
                 img_transform=("img_rand_crop",), frame_column: Union[str, int] = "auto",
                 skip_bad: bool = False, tsv_path: Optional[str] = None):
        self.path = str(tsv_path) if tsv_path else os.path.join(str(data_dir), f"img_{dataset}.tsv")
        if not os.path.exists(self.path):
            raise DataError(f"missing frame store {self.path} (build it from raw videos with "
                            f"_tools/extract_video-frame.py + _tools/extract_tsv.py, see _datasets/README.md)")
        pkl = id2lineidx_path_for(self.path)
        if os.path.exists(pkl):
            self.tsv = TSVFile(self.path, id2lineidx=pkl)
        elif os.path.exists(lineidx_path_for(self.path)):
            self.tsv = TSVFile(self.path)
        else:
            raise DataError(f"{self.path} has neither {pkl} nor {lineidx_path_for(self.path)}: "
                            f"run _tools/make_id2lineidx_pkl.py or lavender.data.tsv.build_lineidx")
        super().__init__(size_frame, size_img, img_transform, skip_bad)
        self.frame_column = file_frame_start(self.path, frame_column)

    @classmethod
    def from_tsv(cls, tsv_path, size_frame: int, size_img: int, **kw) -> "VideoStore":
        """A store over any frame TSV (pretraining part, captioning ``img`` TSV…)."""
        return cls(os.path.dirname(str(tsv_path)), "", size_frame, size_img, tsv_path=str(tsv_path), **kw)

    def __contains__(self, video_id) -> bool:
        return video_id in self.tsv

    def __len__(self) -> int:
        return len(self.tsv.key2offset)

    def ids(self) -> List[str]:
        return self.tsv.keys()

    def frame_strings(self, video_id: str) -> List[str]:
        """All base64 frame fields of a video (DataError if the key is missing)."""
        return frame_fields(self.tsv.row_by_key(video_id), self.frame_column, self.path, self.size_frame)

    def n_rows(self) -> int:
        """Rows of the TSV (read from its index, without reading the keys)."""
        return len(self.tsv)

    def row(self, i: int):
        """(video id, frame fields) of row `i`."""
        row = self.tsv.row(i)
        return row[0], frame_fields(row, self.frame_column, self.path, self.size_frame)

    def __repr__(self) -> str:
        return f"VideoStore({self.path!r}, size_frame={self.size_frame}, size_img={self.size_img})"
