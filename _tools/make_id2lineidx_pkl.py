"""TSV + lineidx -> ``{video_id: byte offset}`` pickle (SPEC 8).

    python _tools/make_id2lineidx_pkl.py --input_file _datasets/img_msrvtt.tsv \
        --output_file _datasets/img_msrvtt.id2lineidx.pkl
Key = ``Path(row[0]).stem``. The first frame of every row is base64-decoded and image-decoded
as a check; bad rows are reported (and still indexed). A missing ``.lineidx`` is rebuilt.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.data.errors import DataError  # noqa: E402
from lavender.data.frames import decode_frame, frame_fields  # noqa: E402
from lavender.data.tsv import TSVFile, build_lineidx, lineidx_path_for, save_id2lineidx  # noqa: E402


def make_id2lineidx(tsv_path, out_path, frame_column="auto"):
    """Returns (n_rows, bad) with bad = [(row index, key, reason)]."""
    if not os.path.exists(lineidx_path_for(tsv_path)):
        print(f"note: {lineidx_path_for(tsv_path)} missing, rebuilding it")
        build_lineidx(tsv_path)
    tsv = TSVFile(tsv_path)
    key2off, bad = {}, []
    for i, off in enumerate(tsv.offsets):
        row = tsv.row_at(off, f"row {i}")
        key = Path(row[0]).stem
        if key in key2off:
            bad.append((i, key, "duplicate key (first row kept)"))
            continue
        key2off[key] = off
        try:
            decode_frame(frame_fields(row, frame_column, file=tsv_path)[0], file=tsv_path, key=key, index=0)
        except DataError as e:
            bad.append((i, key, str(e)))
    save_id2lineidx(out_path, key2off)
    return len(key2off), bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input_file", required=True)
    ap.add_argument("--output_file", required=True)
    ap.add_argument("--frame_column", default="auto", help="'auto' or the first frame column")
    a = ap.parse_args(argv)
    fc = a.frame_column if a.frame_column == "auto" else int(a.frame_column)
    n, bad = make_id2lineidx(a.input_file, a.output_file, fc)
    for i, key, reason in bad:
        print(f"bad row {i} ({key}): {reason}")
    print(f"wrote {n} keys to {a.output_file}; bad rows: {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
