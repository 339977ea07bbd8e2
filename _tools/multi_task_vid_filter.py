"""Remove every task's val/test videos from the train splits of all tasks on the same videos
(docs/data.md#multi-task-data), so that multi-task training never sees a video that another task evaluates on.

    python _tools/multi_task_vid_filter.py --dataset lsmdc msrvtt msvd tgif \
        --data_root _datasets --output_folder _datasets/multi_task

For each dataset D (a video source: `img_{D}.tsv`), the excluded videos are the `video` of every
val/test item of every `txt_{D}-*.json` in data_root, plus the keys of D's captioning val/test yamls
(`--caption_yaml D=PATH`, default `MSRVTT-v2/{val,test}_32frames.yaml` for msrvtt and
`MSVD/{val,test}_32frames.yaml` for msvd, when they exist). Every `txt_{D}-*.json` is written to the
output folder with its train split filtered (val/test unchanged), and D's frame store
(`img_{D}.tsv`, `.lineidx`, `.id2lineidx.pkl`) is linked there (`--no_link` to skip; the original
left that to the user), so the multi-task configs' `data_dir: ./_datasets/multi_task` works as is.
Captioning train data are not rewritten (as the original): their overlap with excluded videos is
reported. A report of what was dropped per task is printed and written to `filter_report.json`.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.data.caption_data import caption_keys  # noqa: E402
from lavender.errors import ConfigError, DataError  # noqa: E402
from lavender.data.annotations import load_annotation_file  # noqa: E402
from lavender.fileio import atomic_json  # noqa: E402

CAPTION_YAMLS = {"msrvtt": "MSRVTT-v2/{split}_32frames.yaml", "msvd": "MSVD/{split}_32frames.yaml"}
STORE_SUFFIXES = (".tsv", ".lineidx", ".id2lineidx.pkl")


def _videos(items):
    if isinstance(items, dict):  # pretraining-style {video: [captions]}
        return set(items)
    return {it["video"] for it in items if isinstance(it, dict) and "video" in it}


def filter_dataset(dataset, data_root, output_folder, caption_yamls=(), link=True):
    """Filter every `txt_{dataset}-*.json`; returns the report {task: counts} and the excluded count."""
    paths = sorted(glob.glob(os.path.join(data_root, f"txt_{dataset}-*.json")))
    if not paths:
        raise DataError(f"no annotation files txt_{dataset}-*.json in {data_root}")
    anns = {p: load_annotation_file(p) for p in paths}
    exclude = set()
    for p, d in anns.items():
        for split in ("val", "test"):
            exclude |= _videos(d.get(split, []))
    caption_train = []
    for y in caption_yamls:  # captioning val/test videos are excluded too; train ones only counted
        if os.path.basename(y).startswith("train"):
            caption_train.append(y)
        else:
            exclude |= set(caption_keys(y, data_root))
    report = {}
    for p, d in anns.items():
        task = os.path.basename(p)[len("txt_"):-len(".json")]
        train = d.get("train", [])
        if isinstance(train, dict):
            kept = {k: v for k, v in train.items() if k not in exclude}
        else:
            kept = [it for it in train if it.get("video") not in exclude]
        report[task] = {"train_items": len(train), "kept": len(kept), "dropped": len(train) - len(kept),
                        "dropped_videos": len(_videos(train) - _videos(kept))}
        atomic_json(dict(d, train=kept), os.path.join(output_folder, os.path.basename(p)))
    for y in caption_train:
        keys = caption_keys(y, data_root)
        report[os.path.relpath(y, data_root)] = {"caption_train_videos": len(keys),
                                                 "overlapping_excluded (not removed)": len(set(keys) & exclude)}
    if link:
        for suffix in STORE_SUFFIXES:
            src = os.path.abspath(os.path.join(data_root, f"img_{dataset}{suffix}"))
            dst = os.path.join(output_folder, f"img_{dataset}{suffix}")
            if os.path.exists(src) and not os.path.lexists(dst):
                os.symlink(src, dst)
    return report, len(exclude)


def default_caption_yamls(dataset, data_root):
    pattern = CAPTION_YAMLS.get(dataset)
    if not pattern:
        return []
    cands = [os.path.join(data_root, pattern.format(split=s)) for s in ("train", "val", "test")]
    return [c for c in cands if os.path.isfile(c)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", nargs="+", default=["lsmdc", "msrvtt", "msvd", "tgif"])
    ap.add_argument("--data_root", default="./_datasets")
    ap.add_argument("--output_folder", default="./_datasets/multi_task")
    ap.add_argument("--caption_yaml", nargs="*", default=[], metavar="DATASET=YAML",
                    help="captioning split yamls of a dataset (relative to data_root), e.g. msrvtt=MSRVTT-v2/val_32frames.yaml")
    ap.add_argument("--no_link", action="store_true", help="do not link the frame stores into the output folder")
    a = ap.parse_args(argv)
    given = {}
    for spec in a.caption_yaml:
        name, sep, path = spec.partition("=")
        if not sep:
            ap.error(f"--caption_yaml {spec!r}: use DATASET=YAML")
        given.setdefault(name, []).append(os.path.join(a.data_root, path))
    if os.path.abspath(a.output_folder) == os.path.abspath(a.data_root):
        raise ConfigError("--output_folder must differ from --data_root (the filtered files keep their names)")
    if os.path.exists(a.output_folder) and not os.path.isdir(a.output_folder):
        raise ConfigError(f"--output_folder {a.output_folder} is a file, not a folder")
    try:
        os.makedirs(a.output_folder, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--output_folder {a.output_folder}: cannot create it ({e.strerror})") from None
    full = {}
    for ds in a.dataset:
        yamls = given.get(ds, default_caption_yamls(ds, a.data_root))
        report, n_ex = filter_dataset(ds, a.data_root, a.output_folder, yamls, link=not a.no_link)
        print(f"{ds}: {n_ex} val/test videos excluded from train")
        for task, r in report.items():
            print(f"  {task}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
        full[ds] = {"excluded_videos": n_ex, "tasks": report}
    atomic_json(full, os.path.join(a.output_folder, "filter_report.json"))
    print(f"wrote {os.path.join(a.output_folder, 'filter_report.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
