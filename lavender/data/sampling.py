"""Which frames a clip takes: the temporal sampling of a stored video's frames (docs/original.md#temporal-sampling)
and the frames the extraction tool keeps from a video file."""
import math
import random as _random
from typing import List

__all__ = ["temporal_sample", "clip_starts", "extraction_indices"]


def temporal_sample(n: int, size_frame: int, train: bool, rng=None, pad: bool = True, start=None) -> List[int]:
    """Indices of the frames to use out of `n` (docs/original.md#temporal-sampling).

    N == F: all. N > F: C = ceil(N/F); train start ~ U{0..C-1} (``rng.randint``), end =
    min(start + (F-1)C, N-1); eval start 0, end N-1; index k = round(start + k(end-start)/(F-1))
    (Python banker's rounding); F == 1 takes round((start+end)/2). A given `start` (one of
    :func:`clip_starts`, multi-clip testing) takes the train rule with that start.
    N < F (the original crashes, docs/original.md#3-fewer-frames-than-size_frame-crash): all N frames, then — with `pad` — the last index
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
    """Starts of the clips that multi-clip testing averages (docs/original.md#multi-clip-testing): 0..C-1, C = ceil(N/F), when a row
    has more frames than F; else [None], the one evaluation clip."""
    F = int(size_frame)
    return list(range(math.ceil(n / F))) if n > F else [None]


def extraction_indices(n_frames: int, sample: int) -> List[int]:
    """Frames kept by the extraction tool (docs/original.md#frame-extraction-indices): int(step*(i+1)), step = N/(K+1), i < K.

    Evenly spaced, endpoints excluded. With N < K some indices repeat (always < N).
    """
    step = n_frames / (sample + 1)
    return [int(step * (i + 1)) for i in range(sample)]

