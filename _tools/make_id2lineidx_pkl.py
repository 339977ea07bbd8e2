"""TSV -> ``{video_id: byte offset}`` pickle (docs/data.md#the-tools), read from the TSV itself.

    python _tools/make_id2lineidx_pkl.py --input_file _datasets/img_msrvtt.tsv \
        --output_file _datasets/img_msrvtt.id2lineidx.pkl
Key = ``Path(row[0]).stem``. Every row of the TSV is scanned (a truncated or stale ``.lineidx`` is
never trusted; it is rewritten when it does not list exactly the rows found). The first frame of
every row is base64-decoded and image-decoded as a check; bad rows (undecodable first frame, a
last row cut short) are reported, and the exit status is then 1. Two rows with the same key are refused
(an error listing the keys and their lines; nothing is written), as every reader of a TSV refuses them.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.errors import DataError  # noqa: E402
from lavender.data.codec import decode_frame, file_frame_start, frame_fields, parse_frame_column  # noqa: E402
from lavender.data.tsv import check_unique_keys, line_numbers, scan_rows, split_row  # noqa: E402
from lavender.data.tsv_index import lineidx_path_for, read_lineidx, save_id2lineidx, write_lineidx  # noqa: E402


def make_id2lineidx(tsv_path, out_path, frame_column="auto", log=print):
    """Returns (n_keys, bad) with bad = [(row index, key, reason)]."""
    tsv_path = str(tsv_path)
    if not os.path.isfile(tsv_path):
        raise DataError(f"missing TSV file {tsv_path}")
    start = file_frame_start(tsv_path, frame_column)
    key2off, offsets, bad, rows_of = {}, [], [], {}
    for i, (off, line) in enumerate(scan_rows(tsv_path)):
        offsets.append(off)
        row = split_row(line, f"{tsv_path}: row {i} at byte {off}")
        key = Path(row[0]).stem
        rows_of.setdefault(key, []).append(off)
        if key in key2off:
            continue
        if not line.endswith(b"\n"):
            bad.append((i, key, f"the file ends in the middle of this row: {tsv_path} is truncated (not indexed)"))
            continue
        key2off[key] = off
        try:
            decode_frame(frame_fields(row, start, file=tsv_path)[0], file=tsv_path, key=key, index=0)
        except DataError as e:
            bad.append((i, key, str(e)))
    if len(rows_of) < len(offsets):  # refused, as every reader refuses them: nothing is written
        at = line_numbers(tsv_path, offsets)
        check_unique_keys(tsv_path, {k: [at[o] for o in v] for k, v in rows_of.items()})
    lineidx = lineidx_path_for(tsv_path)
    old = read_lineidx(lineidx) if os.path.exists(lineidx) else None
    if old != offsets:
        write_lineidx(lineidx, offsets)
        was = "was missing" if old is None else f"listed {len(old)} rows, not the {len(offsets)} found"
        log(f"note: rewrote {lineidx} (it {was})")
    save_id2lineidx(out_path, key2off)
    return len(key2off), bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input_file", required=True)
    ap.add_argument("--output_file", required=True)
    ap.add_argument("--frame_column", default="auto", type=parse_frame_column,
                    help="'auto' or the first frame column")
    a = ap.parse_args(argv)
    n, bad = make_id2lineidx(a.input_file, a.output_file, a.frame_column)
    for i, key, reason in bad:
        print(f"bad row {i} ({key}): {reason}")
    print(f"wrote {n} keys to {a.output_file}; bad rows: {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
