"""Captioning data in SwinBERT's layout (docs/data.md#captioning-data-swinbert-layout): one yaml per split
naming its files.

```yaml
img: train.img.tsv                       # frames: key \\t <field> \\t frame_1 ... frame_K (+ .lineidx)
caption: train.caption.tsv               # key \\t [{"caption": "..."}, ...]            (+ .lineidx)
caption_linelist: train.linelist.tsv     # optional: caption_row \\t caption_index, one training sample per line
caption_coco_format: train_coco.json     # optional: COCO-format references of the split
```

A relative path in the yaml is looked up beside the yaml, then under ``data_dir``; the yaml itself (the
configs' ``train_yaml`` etc.) is relative to ``data_dir``. Without a linelist every caption-TSV row is one
sample with its first caption; without ``caption_coco_format`` the references file is
``{yaml stem}_caption_coco_format.json`` beside the yaml, if it exists. ``label`` (SwinBERT's copy of the
caption TSV) and other keys are not read; ``composite`` stores are not supported.

Frames are read by key through the one frame reader (:class:`VideoStore`), with SwinBERT's column rule by
default (``frame_column="swinbert"``: ``row[2:]`` if the row has >= size_frame + 2 fields, else the image
``row[-1]``). SwinBERT pairs the caption and frame TSVs by row index; pairing by key is the same when the
files are aligned and also works when they are not.

Problems in the rows (a key missing from the frame TSV, an empty or unreadable caption list, a linelist
line out of range) are collected and raised as one :class:`DataError` naming the file and the key or line;
with ``skip_bad`` the affected samples are dropped and counted in the store's ``n_skipped`` /
``skip_reasons`` (the run's skipped-data report).
"""
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import DataError
from ..paths import Input
from .tsv import TSVFile
from .video_store import VideoStore

__all__ = ["CaptionSplit", "caption_keys", "load_caption_split", "resolve_yaml", "split_inputs"]


@dataclass
class CaptionSplit:
    """One split: the frame store, the samples and the references."""
    yaml: str
    store: VideoStore
    samples: List[dict]                 # {"video": key, "caption": text}: one per training sample
    references: Dict[str, List[str]]    # key -> every caption of that video (metrics)
    keys: List[str]                     # one per video, caption-TSV order: what evaluation decodes
    coco_gt: Optional[str] = None       # COCO-format reference json, if the split has one
    problems: List[str] = field(default_factory=list)  # what skip_bad dropped

    @property
    def n_skipped(self) -> int:
        """Samples/rows dropped with skip_bad."""
        return len(self.problems)


def resolve_yaml(path, data_dir=None):
    """A split yaml from a config: absolute, else under `data_dir`, else as given."""
    path = os.fspath(path)
    cands = [path] if os.path.isabs(path) else (
        ([os.path.join(os.fspath(data_dir), path)] if data_dir else []) + [path])
    for c in cands:
        if os.path.isfile(c):
            return c
    raise DataError(f"captioning yaml {path} not found (looked for {', '.join(cands)}); see _datasets/README.md "
                    "for the SwinBERT layout")


def _entry(cfg, key, yaml_path, data_dir, required=True):
    """Resolved path of a yaml entry: beside the yaml, then under data_dir."""
    val = cfg.get(key)
    if val is None:
        if required:
            raise DataError(f"{yaml_path}: missing entry {key!r} (needs img and caption; see _datasets/README.md)")
        return None
    if not isinstance(val, str) or not val.strip():
        raise DataError(f"{yaml_path}: entry {key!r} must be a file path, got {val!r}")
    cands = [val] if os.path.isabs(val) else [os.path.join(os.path.dirname(yaml_path), val)] + (
        [os.path.join(os.fspath(data_dir), val)] if data_dir else [])
    for c in cands:
        if os.path.isfile(c):
            return c
    raise DataError(f"{yaml_path}: {key} file {val!r} not found (looked for {', '.join(cands)})")


def _read_yaml(path):
    import yaml
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
        if not isinstance(cfg, dict):
            raise ValueError(f"expected a mapping with img/caption entries, got {type(cfg).__name__}")
    except (yaml.YAMLError, ValueError) as e:
        raise DataError(f"{path}: not a captioning yaml ({e})") from None
    if cfg.get("composite"):
        raise DataError(f"{path}: composite stores (several TSV parts behind one linelist) are not supported; "
                        "merge the parts into one img/caption TSV")
    return cfg


def _read_captions(path, problems):
    """[(key, [caption, ...])] of the caption TSV; unreadable rows go to `problems` as (key, reason)."""
    rows = []
    for i, row in enumerate(TSVFile(path)):
        key = row[0]
        try:
            caps = json.loads(row[1]) if len(row) > 1 else None
            if not isinstance(caps, list) or not all(isinstance(c, dict) and isinstance(c.get("caption"), str)
                                                     for c in caps):
                raise ValueError('expected a json list of {"caption": text}')
            texts = [c["caption"] for c in caps]
            if not texts:
                raise ValueError("empty caption list")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            problems.append((key, f"{path}: row {i} (key {key!r}): {e}"))
            texts = None
        rows.append((key, texts))
    return rows


def _read_linelist(path, rows, problems):
    """(row index, caption index) per line; lines that are malformed or out of range go to `problems`."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                i, j = int(parts[0]), int(parts[1])
                if len(parts) != 2:
                    raise ValueError
            except (ValueError, IndexError):
                problems.append((f"linelist line {n}", f"{path}: line {n}: expected 'row_index<TAB>caption_index', "
                                                       f"got {line.strip()[:60]!r}"))
                continue
            if not 0 <= i < len(rows):
                problems.append((f"linelist line {n}", f"{path}: line {n}: caption row {i} out of range "
                                                       f"({len(rows)} rows)"))
            elif rows[i][1] is not None and not 0 <= j < len(rows[i][1]):
                problems.append((f"linelist line {n}", f"{path}: line {n}: caption index {j} out of range for key "
                                                       f"{rows[i][0]!r} ({len(rows[i][1])} captions)"))
            else:
                out.append((i, j))
    return out


def split_inputs(yaml_path, data_dir=None, with_img=True):
    """The files one split reads (lavender.paths.Input): the yaml, then the img (unless `with_img` is false)
    and caption TSVs it names. A yaml that is there but does not parse is left to `load_caption_split`."""
    try:
        path = resolve_yaml(yaml_path, data_dir)
    except DataError:
        cands = [os.path.join(os.fspath(data_dir), yaml_path)] if data_dir and not os.path.isabs(yaml_path) else []
        return [Input("captioning yaml", (cands + [yaml_path])[0], "captioning")]
    try:
        cfg = _read_yaml(path)
    except DataError:
        return []
    out = []
    for key in ("img", "caption") if with_img else ("caption",):
        val = cfg.get(key)
        if isinstance(val, str) and val.strip():
            cands = [val] if os.path.isabs(val) else [os.path.join(os.path.dirname(path), val)] + (
                [os.path.join(os.fspath(data_dir), val)] if data_dir else [])
            out.append(Input(f"{key} TSV of {os.path.basename(path)}", cands[0], "captioning", alternatives=cands[1:]))
    return out


def caption_keys(yaml_path, data_dir=None):
    """The video keys of a split's caption TSV (no frames read; rows that do not parse included)."""
    path = resolve_yaml(yaml_path, data_dir)
    return [k for k, _ in _read_captions(_entry(_read_yaml(path), "caption", path, data_dir), [])]


def load_caption_split(yaml_path, data_dir=None, size_frame=4, size_img=224, img_transform=("img_rand_crop",),
                       frame_column="swinbert", skip_bad=False, store=None) -> CaptionSplit:
    """Read one split of the SwinBERT layout (module doc); `store` (e.g. a folder of video files) replaces
    the yaml's `img` TSV."""
    path = resolve_yaml(yaml_path, data_dir)
    cfg = _read_yaml(path)
    img = _entry(cfg, "img", path, data_dir) if store is None else store.path
    cap = _entry(cfg, "caption", path, data_dir)
    linelist = _entry(cfg, "caption_linelist", path, data_dir, required=False)
    coco = _entry(cfg, "caption_coco_format", path, data_dir, required=False)
    if coco is None:
        beside = os.path.splitext(path)[0] + "_caption_coco_format.json"
        coco = beside if os.path.isfile(beside) else None
    if store is None:
        store = VideoStore.from_tsv(img, size_frame, size_img, img_transform=img_transform,
                                    frame_column=frame_column, skip_bad=skip_bad)

    problems = []
    rows = _read_captions(cap, problems)
    seen = set()
    for i, (key, texts) in enumerate(rows):
        if key in seen:
            problems.append((key, f"{cap}: row {i}: key {key!r} appears twice"))
            rows[i] = (key, None)
        seen.add(key)
        if texts is not None and key not in store:
            problems.append((key, f"{cap}: row {i}: key {key!r} is not in the frame TSV {img}"))
            rows[i] = (key, None)
    pairs = _read_linelist(linelist, rows, problems) if linelist else [(i, 0) for i in range(len(rows))]
    if problems:
        msg = (f"{path}: {len(problems)} problem(s) in the captioning data; first: "
               + "; ".join(p for _, p in problems[:5]) + " (skip_bad true drops them)")
        if not skip_bad:
            raise DataError(msg)
        for where, reason in problems:
            store.skip(where, DataError(reason))
    kept = [(k, t) for k, t in rows if t is not None]
    samples = [{"video": rows[i][0], "caption": rows[i][1][j]} for i, j in pairs if rows[i][1] is not None]
    if not samples:
        raise DataError(f"{path}: no usable captioning samples (caption TSV {cap}"
                        + (f", linelist {linelist}" if linelist else "") + ")")
    return CaptionSplit(yaml=path, store=store, samples=samples, references=dict(kept), keys=[k for k, _ in kept],
                        coco_gt=coco, problems=[p for _, p in problems])
