"""Write a PNG grid of the frames of one TSV row (first row by default).

Frames start at the column decided once for the whole file (as every reader does); a frame of the row
that does not decode is an error naming the file, key and frame.

    python _tools/visualize_frame_tsv.py --input_file _datasets/img_msrvtt.tsv --key video7010 --output grid.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from lavender.run import main_guard  # noqa: E402
from lavender.data.codec import decode_frame, file_frame_start, frame_fields, parse_frame_column  # noqa: E402
from lavender.data.tsv import TSVFile  # noqa: E402
from lavender.data.tsv_index import id2lineidx_path_for  # noqa: E402


def frame_grid(frames, cols: int = 4, pad: int = 2) -> Image.Image:
    """RGB arrays -> one PIL image, `cols` per row, frames resized to the first one's size."""
    h, w = frames[0].shape[:2]
    rows = (len(frames) + cols - 1) // cols
    cols = min(cols, len(frames))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    for i, f in enumerate(frames):
        if f.shape[:2] != (h, w):
            f = np.asarray(Image.fromarray(f).resize((w, h)))
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = f
    return Image.fromarray(grid)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input_file", required=True)
    ap.add_argument("--key", default=None, help="row key (default: the first row)")
    ap.add_argument("--output", default="grid.png")
    ap.add_argument("--frame_column", default="auto", type=parse_frame_column)
    ap.add_argument("--cols", type=int, default=4)
    a = ap.parse_args(argv)
    pkl = id2lineidx_path_for(a.input_file)
    tsv = TSVFile(a.input_file, id2lineidx=pkl if Path(pkl).exists() else None)
    row = tsv.row_by_key(a.key) if a.key is not None else tsv.row(0)
    start = file_frame_start(a.input_file, a.frame_column)
    fields = frame_fields(row, start, file=a.input_file)
    frames = [decode_frame(b, file=a.input_file, key=row[0], index=i) for i, b in enumerate(fields)]
    frame_grid(frames, a.cols).save(a.output)
    print(f"{row[0]}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} -> {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
