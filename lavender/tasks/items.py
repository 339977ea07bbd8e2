"""`ItemDataset`: annotation items + a frame store + a task's `encode`, and `subsample_videos` (data_ratio)."""
import random
import zlib

from torch.utils.data import Dataset

from ..errors import DataError

__all__ = ["ItemDataset", "subsample_videos", "FIELD_KINDS", "field_problem"]

# What an annotation field may hold, by kind (a family's `field_kinds` names the kind of each of its fields)
FIELD_KINDS = {
    "text": "a non-empty string",
    "text_or_empty": "a string",
    "index": "a whole number >= 0",
    "label": "a whole number or a non-empty string",
    "texts": "a non-empty string or a non-empty list of non-empty strings",
}


def _text(v):
    return isinstance(v, str) and v.strip() != ""


def _index(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_CHECKS = {
    "text": _text,
    "text_or_empty": lambda v: isinstance(v, str),
    "index": _index,
    "label": lambda v: _index(v) or _text(v),
    "texts": lambda v: _text(v) or (isinstance(v, list) and bool(v) and all(_text(x) for x in v)),
}


def field_problem(item, field, kind):
    """Why `item[field]` is not of `kind` (FIELD_KINDS), or None when it is (or the field is absent)."""
    if field not in item or _CHECKS[kind](item[field]):
        return None
    v = item[field]
    return f"{field} must be {FIELD_KINDS[kind]}, got {type(v).__name__} {repr(v)[:40]}"


class ItemDataset(Dataset):
    """Annotation items + a frame store + the task's `encode`. Augmentation draws come from a
    per-(seed, epoch, index) RNG, so results do not depend on worker count or on resuming.
    `multi_clip`: every clip of a video (VideoStore.clip), for multi-clip retrieval testing."""

    def __init__(self, items, store, encode, train, seed=0, multi_clip=False):
        self.items, self.store, self.encode, self.train = items, store, encode, train
        self.seed, self.epoch, self.multi_clip = seed, 0, multi_clip

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        rng = random.Random(zlib.crc32(f"{self.seed}/{self.epoch}/{i}".encode()))
        if "row" in item:  # pretraining: the row gives the video id
            vid, img = self.store.clip_row(item["row"], self.train, rng)
            item = dict(item, video=vid)
        else:
            img = self.store.clip(item["video"], self.train, rng, multi_clip=self.multi_clip) \
                if self.store is not None else None
        if img is None and self.store is not None:
            return None  # skip_bad: counted by the store, dropped by collate
        out = {"index": i, "video": item.get("video", "")}
        if img is not None:
            out["img"] = img
        try:
            out.update(self.encode(item, self.train, rng))
        except DataError as e:  # an item the task cannot use (e.g. no caption): an error, or skip_bad
            if self.store is None:
                raise
            self.store.skip(out["video"], e)
            return None
        return out


def subsample_videos(items, ratio, seed):
    """data_ratio: <1 keeps that fraction of videos (with all their items), >1 that many videos."""
    vids = sorted({it["video"] for it in items})
    random.Random(seed).shuffle(vids)
    keep = set(vids[: int(-(-len(vids) * ratio // 1)) if ratio < 1 else int(ratio)])
    return [it for it in items if it["video"] in keep]
