"""Raw videos -> sparse JPEG frames (base64) in a pickle, as the original tool (docs/data.md#the-tools).

    python _tools/extract_video-frame.py --path msrvtt --sample 5
reads ``_msrvtt/*.{mp4,avi,webm,mkv,mov,gif,...}`` and writes ``msrvtt.pkl`` =
``{video_id (file stem): [b64 JPEG, ...]}``. Frame i (i < K) of a video with N decoded frames is
``int(step*(i+1))``, ``step = N/(K+1)`` (endpoints excluded). JPEG quality 75 (PIL default),
original resolution unless ``--resize S`` (shorter side).

Bad videos never stop the run: unreadable files and files with zero frames are skipped and
listed with their reason at the end. When no video could be read (or the folder has none), nothing is
written and the exit status is 2. A video with fewer than K frames (but at least one) is
KEPT with K frames, some repeated (the original formula does this), and listed as a note.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import worker_pool  # noqa: E402

from lavender.run import main_guard  # noqa: E402
from lavender.errors import DataError  # noqa: E402
from lavender.data.video_files import VIDEO_EXTS, list_videos, read_video_fields  # noqa: E402
from lavender.fileio import atomic_write  # noqa: E402


def extract_one(job):
    """(path, sample, resize) -> (video_id, [b64] or None, n_frames, reason or None)."""
    path, sample, resize = job
    vid = Path(path).stem
    try:
        fields, n = read_video_fields(path, sample, resize)
        return vid, fields, n, None
    except DataError as e:
        return vid, None, 0, str(e)
    except Exception as e:  # never let one file stop the run
        return vid, None, 0, f"unreadable ({type(e).__name__}: {e})"


def extract_videos(input_dir, output, sample: int, workers: int = 1, resize=None, progress: bool = True):
    """Extract every video of `input_dir` into the pickle `output` (atomic).

    Returns ``(n_done, skipped, short)``: ``skipped`` = [(file name, reason)], ``short`` =
    [(file name, n_frames)] for videos kept with fewer than `sample` distinct frames.
    """
    paths = [Path(p) for p in list_videos(input_dir)]
    if not paths:
        raise DataError(f"{input_dir} holds no video files ({', '.join(VIDEO_EXTS)}): nothing to extract, "
                        f"nothing written")
    jobs = [(str(p), int(sample), resize) for p in paths]
    out, skipped, short = {}, [], []
    with worker_pool.imap(extract_one, jobs, workers, chunksize=max(1, len(jobs) // (workers * 8)),
                          desc=f"extract {Path(input_dir).name}" if progress else None) as it:
        for p, (vid, b64s, n, reason) in zip(paths, it):
            if b64s is None:
                skipped.append((p.name, reason))
                continue
            if vid in out:
                skipped.append((p.name, f"duplicate video id {vid!r} (another file has the same stem)"))
                continue
            if n < sample:
                short.append((p.name, n))
            out[vid] = b64s
    if not out:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise DataError(f"none of the {len(paths)} video file(s) in {input_dir} could be read ({reasons}"
                        f"{'; ...' if len(skipped) > 3 else ''}): nothing written")
    with atomic_write(output, "wb") as f:
        pickle.dump(out, f)
    return len(out), skipped, short


def report(n_done: int, skipped, short, sample: int, file=sys.stdout) -> None:
    for name, n in short:
        print(f"note: {name}: only {n} frame(s) < --sample {sample}; kept with repeated frames", file=file)
    for name, reason in skipped:
        print(f"skipped: {name}: {reason}", file=file)
    print(f"done {n_done} / skipped {len(skipped)}", file=file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", required=True, help="NAME: reads _NAME/, writes NAME.pkl")
    ap.add_argument("--sample", required=True, type=int, help="frames kept per video (K)")
    ap.add_argument("--input_dir", default=None, help="override the input folder (default _NAME)")
    ap.add_argument("--output", default=None, help="override the output pickle (default NAME.pkl)")
    ap.add_argument("--resize", type=int, default=None, help="resize the shorter side to S (default: keep)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    if a.sample < 1:
        ap.error("--sample must be >= 1")
    input_dir = a.input_dir or f"_{a.path}"
    if not os.path.isdir(input_dir):
        raise DataError(f"input folder {input_dir} does not exist (put the raw videos there or pass --input_dir)")
    output = a.output or f"{a.path}.pkl"
    n_done, skipped, short = extract_videos(input_dir, output, a.sample, a.workers, a.resize,
                                            progress=not a.no_progress)
    report(n_done, skipped, short, a.sample)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
