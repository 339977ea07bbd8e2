"""`ItemDataset`: annotation items + a frame store + a task's `encode`, and `subsample_videos` (data_ratio)."""
import random
import zlib

from torch.utils.data import Dataset

from ..errors import DataError

__all__ = ["ItemDataset", "subsample_videos"]


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
