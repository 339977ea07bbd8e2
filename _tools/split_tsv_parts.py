"""A frame TSV -> pretraining stores (docs/data.md#pretraining-parts).

    python _tools/split_tsv_parts.py --input_file _datasets/img_webvid.tsv --name webvid \
        --output_dir _datasets --size_part 4 --txt_json _datasets/txt_webvid.json
writes ``webvid_train_{0..3}.tsv/.lineidx`` (train keys split into contiguous, near-equal parts) and
``webvid_val.tsv/.lineidx``, rows ``vid\\tframe_1\\t...`` (frames from column 1, the pretraining layout).
Train/val keys come from the ``"train"``/``"val"`` of ``--txt_json`` (dict {vid: [captions]} or item
lists); without it every ``--val_every``-th row goes to val. ``--image`` writes one frame per row
(the middle frame) for CC3M-style image stores (used with size_frame 1).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.errors import ConfigError, DataError  # noqa: E402
from lavender.data.codec import file_frame_start, frame_fields, parse_frame_column  # noqa: E402
from lavender.data.tsv import TSVFile, write_tsv  # noqa: E402
from lavender.data.tsv_index import id2lineidx_path_for  # noqa: E402
from lavender.data.annotations import load_annotation_file  # noqa: E402


def _split_keys(d: dict, split: str, path):
    v = d.get(split, {})
    if isinstance(v, dict):
        return list(v.keys())
    try:
        return [it["video"] for it in v]
    except (TypeError, KeyError):
        raise DataError(f"{path}[{split!r}]: expected {{video: [captions]}} or items with a 'video' field") from None


def split_parts(tsv_path, name: str, output_dir, size_part: int, train_keys=None, val_keys=None,
                val_every: int = 10, image: bool = False, frame_column="auto"):
    """Write the part files; returns {file name: n_rows}."""
    pkl = id2lineidx_path_for(tsv_path)
    tsv = TSVFile(tsv_path, id2lineidx=pkl if os.path.exists(pkl) else None)
    start = file_frame_start(tsv_path, frame_column)
    keys = tsv.keys()
    if train_keys is None or val_keys is None:
        val_keys = keys[val_every - 1::val_every]
        vs = set(val_keys)
        train_keys = [k for k in keys if k not in vs]
    train_keys = [k for k in train_keys if k in tsv]
    val_keys = [k for k in val_keys if k in tsv]

    def rows(ks):
        for k in ks:
            fr = frame_fields(tsv.row_by_key(k), start, file=tsv_path)
            yield [k, fr[len(fr) // 2]] if image else [k] + fr

    out = {}
    n = len(train_keys)
    bounds = [round(p * n / size_part) for p in range(size_part + 1)]
    for p in range(size_part):
        fn = os.path.join(str(output_dir), f"{name}_train_{p}.tsv")
        out[os.path.basename(fn)] = len(write_tsv(fn, rows(train_keys[bounds[p]:bounds[p + 1]])))
    fn = os.path.join(str(output_dir), f"{name}_val.tsv")
    out[os.path.basename(fn)] = len(write_tsv(fn, rows(val_keys)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input_file", required=True)
    ap.add_argument("--name", required=True, help="dataset name used in the output file names")
    ap.add_argument("--output_dir", default=".")
    ap.add_argument("--size_part", type=int, default=1)
    ap.add_argument("--txt_json", default=None, help="take train/val keys from this json")
    ap.add_argument("--val_every", type=int, default=10)
    ap.add_argument("--image", action="store_true", help="one (middle) frame per row")
    ap.add_argument("--frame_column", default="auto", type=parse_frame_column)
    a = ap.parse_args(argv)
    for opt in ("size_part", "val_every"):
        if getattr(a, opt) < 1:
            raise ConfigError(f"--{opt} must be >= 1, got {getattr(a, opt)}")
    tr = va = None
    if a.txt_json:
        d = load_annotation_file(a.txt_json)
        tr, va = _split_keys(d, "train", a.txt_json), _split_keys(d, "val", a.txt_json)
    for fn, n in split_parts(a.input_file, a.name, a.output_dir, a.size_part, tr, va, a.val_every,
                             a.image, a.frame_column).items():
        print(f"{fn}: {n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
