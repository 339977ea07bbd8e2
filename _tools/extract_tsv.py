"""Frame pickle -> TSV + lineidx, in the original layout (docs/data.md#the-tools).

    python _tools/extract_tsv.py --path msrvtt
reads ``msrvtt.pkl`` ({video_id: [b64, ...]}) and writes ``msrvtt.tsv`` with rows
``vid\\tb64_1\\t...\\tb64_K\\n`` and ``msrvtt.lineidx`` (byte offset of each row). With
``--id2lineidx`` it also writes ``msrvtt.id2lineidx.pkl`` ({vid: offset}).

Downstream stores are read as ``{data_dir}/img_{dataset}.tsv`` + ``img_{dataset}.id2lineidx.pkl``:
name the output accordingly, e.g.
    python _tools/extract_tsv.py --path msrvtt --output _datasets/img_msrvtt.tsv --id2lineidx
All files are written atomically (temp file + rename). The pickle is read without running code from it
(lavender/data/safe_pickle.py) and must be ``{str: [base64 JPEG/PNG str or bytes, ...]}``; anything else
is refused with the video and frame named.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.errors import DataError  # noqa: E402
from lavender.data.codec import is_frame_field  # noqa: E402
from lavender.data.safe_pickle import load_plain_pickle  # noqa: E402
from lavender.data.tsv_index import id2lineidx_path_for, lineidx_path_for  # noqa: E402
from lavender.data.tsv import write_tsv  # noqa: E402

REWRITE = "write it again with _tools/extract_video-frame.py"


def _frame_row(pkl_path, vid, frames):
    """[vid, frame, ...] of one pickle entry, with its types checked (a str is not a list of frames)."""
    where = f"{pkl_path}: video {vid!r}"
    if not isinstance(vid, str) or not vid or any(c in vid for c in "\t\n"):
        raise DataError(f"{where}: a video id must be a non-empty string without tabs/newlines; {REWRITE}")
    if not isinstance(frames, (list, tuple)) or not frames:
        raise DataError(f"{where}: expected a non-empty list of base64 frames, got "
                        f"{type(frames).__name__} {repr(frames)[:40]}; {REWRITE}")
    row = [vid]
    for i, fr in enumerate(frames):
        if isinstance(fr, bytes):
            fr = fr.decode("ascii", "replace")
        if not isinstance(fr, str) or not is_frame_field(fr) or "\t" in fr or "\n" in fr:
            raise DataError(f"{where}, frame {i}: expected one line of base64 JPEG/PNG, got "
                            f"{type(fr).__name__} {repr(fr)[:40]}; {REWRITE}")
        row.append(fr)
    return row


def pkl_to_tsv(pkl_path, tsv_path, id2lineidx: bool = False) -> int:
    """Write the TSV (+ lineidx, + optional id2lineidx pkl) of a frame pickle. Returns the row count."""
    if not os.path.exists(pkl_path):
        raise DataError(f"missing frame pickle {pkl_path} ({REWRITE})")
    vid2frames = load_plain_pickle(pkl_path, "frame pickle {video_id: [base64 frame, ...]}", REWRITE)
    if not isinstance(vid2frames, dict):
        raise DataError(f"{pkl_path}: expected {{video_id: [b64, ...]}}, got {type(vid2frames).__name__}; {REWRITE}")
    if not vid2frames:
        raise DataError(f"{pkl_path} holds no videos: nothing to write ({REWRITE})")
    rows = (_frame_row(pkl_path, vid, frames) for vid, frames in vid2frames.items())
    key2off = write_tsv(tsv_path, rows, lineidx_path_for(tsv_path),
                        id2lineidx_path_for(tsv_path) if id2lineidx else None)
    return len(key2off)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", required=True, help="NAME: reads NAME.pkl, writes NAME.tsv + NAME.lineidx")
    ap.add_argument("--input", default=None, help="override the input pickle (default NAME.pkl)")
    ap.add_argument("--output", default=None, help="override the output TSV (e.g. _datasets/img_NAME.tsv)")
    ap.add_argument("--id2lineidx", action="store_true", help="also write the {vid: offset} pickle")
    a = ap.parse_args(argv)
    tsv = a.output or f"{a.path}.tsv"
    n = pkl_to_tsv(a.input or f"{a.path}.pkl", tsv, a.id2lineidx)
    extra = f" + {id2lineidx_path_for(tsv)}" if a.id2lineidx else ""
    print(f"wrote {n} rows to {tsv} + {lineidx_path_for(tsv)}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
