"""Annotation files ``txt_{task}.json``: the splits and their items (docs/data.md#annotation-files)."""
from __future__ import annotations

import json
import os
from typing import List

from ..errors import DataError

__all__ = ["load_annotations", "load_annotation_file", "check_videos"]


def load_annotation_file(path_json) -> dict:
    """The whole ``txt_{task}.json`` dict (splits + optional ``ans2label``)."""
    path_json = str(path_json)
    if not os.path.exists(path_json):
        raise DataError(f"missing annotation file {path_json}")
    with open(path_json, "rb") as f:
        raw = f.read()
    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path_json}: not UTF-8 text: byte {raw[e.start:e.start + 1]!r} at offset {e.start} "
                        f"(line {line}); JSON files are UTF-8: convert it (e.g. iconv -f latin1 -t utf-8)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path_json}: invalid JSON ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path_json}: expected a dict with 'train'/'val'[/'test'] keys")
    return d


def check_videos(items: List[dict], store, skip_bad: bool = False, where: str = "") -> List[dict]:
    """Keep items whose ``video`` is in `store`; else one DataError listing the first missing ids."""
    missing = [it.get("video") for it in items if it.get("video") not in store]
    if not missing:
        return items
    uniq = list(dict.fromkeys(missing))
    msg = (f"{where}: {len(missing)} item(s) / {len(uniq)} video(s) not in {getattr(store, 'path', store)}; "
           f"first missing: {uniq[:10]}")
    if not skip_bad:
        raise DataError(msg)
    if hasattr(store, "skip_reasons"):
        store.n_skipped += len(uniq)
        for v in uniq:
            store.skip_reasons[v] = "not in the frame store"
    return [it for it in items if it.get("video") in store]


def load_annotations(path_json, split: str, store=None, skip_bad: bool = False) -> List[dict]:
    """Items of `split` in ``txt_{task}.json``.

    A list split is returned as is; a pretraining dict split ``{vid: [caption, …]}`` becomes
    ``[{"video": vid, "caption": [caption, …]}]``. With `store`, every item's ``video`` must be
    in it (one DataError listing the first missing ids and the count), or with `skip_bad`
    those items are dropped and counted in ``store.n_skipped``.
    """
    d = load_annotation_file(path_json)
    if split not in d:
        splits = [k for k in d if k != "ans2label"]
        raise DataError(f"{path_json} has no split {split!r} (splits present: {splits})")
    items = d[split]
    if isinstance(items, dict):
        items = [{"video": k, "caption": v} for k, v in items.items()]
    if not isinstance(items, list):
        raise DataError(f"{path_json}[{split!r}] must be a list of items or a {{video: [captions]}} dict")
    bad = [i for i, it in enumerate(items) if not isinstance(it, dict) or "video" not in it]
    if bad:
        raise DataError(f"{path_json}[{split!r}]: item(s) {bad[:10]} lack a 'video' field ({len(bad)} total)")
    bad = [i for i, it in enumerate(items) if not isinstance(it["video"], str) or not it["video"]]
    if bad:
        v = items[bad[0]]["video"]
        raise DataError(f"{path_json}[{split!r}] item {bad[0]}: video must be a non-empty string (a key of the frame "
                        f"store), got {type(v).__name__} {repr(v)[:40]} ({len(bad)} item(s) in all)")
    if store is not None:
        items = check_videos(items, store, skip_bad, where=f"{path_json}[{split!r}]")
    return items
