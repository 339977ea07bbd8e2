"""LAVENDER pretraining (docs/original.md#pretraining-objectives): masked language modelling (MTM) + video-text matching phrased as
MLM (VTM: "true"/"false" at a [MASK] appended after the text), equal weights.

Data, as the original: for each dataset in `dataset` (e.g. ["webvid2.5m", "cc3m"]) the frame parts
`{data_dir}/{name}_train_{0..size_part-1}.tsv` and `{name}_val.tsv` (each with a `.lineidx`), read by
row, and captions `txt_{name}.json` = {"train": {id: [caption, ...]}, "val": {...}} (first caption).
Image datasets (cc3m, coco, vg, cc12m and `image_datasets`) give one frame per item. One epoch
visits the datasets and their parts in order; a batch never mixes two parts.

`dataset` may be the original's dict {name: folder} and `size_part` its dict {name: parts};
`pretrain_tasks` selects the objectives (the original ignored it and always trained both).

Differences from the original, on purpose: `p_mask` is honoured (the original hard-codes 0.15, the
default here); masking is drawn per example from its seeded RNG (reproducible, resumable); VTM is
scored by the softmax of true/false (`retrieval_score: ratio` gives the original's rule); one
checkpoint per epoch instead of one per part.
"""
import itertools
import os

import torch
from torch.utils.data import ConcatDataset

from ..errors import ConfigError, DataError
from ..data.annotations import check_videos, load_annotation_file
from ..data.video_folder import VideoFolderStore, tsv_inputs
from ..data.video_store import VideoStore
from ..paths import Input, repo_path
from .base import Task
from .items import ItemDataset
from .modeling import true_false_scores
from .registry import register

IMAGE_DATASETS = ("cc3m", "coco", "vg", "cc12m")


class RowItems:
    """Items {"row": i} for i < n, without building n dicts."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"row": i}


class Segmented(ConcatDataset):
    """Parts one after another; `segments` tells the sampler where each part starts and ends."""

    def __init__(self, parts, names):
        super().__init__(parts)
        self.segments, self.names = [len(p) for p in parts], names

    def __getitem__(self, i):
        out = super().__getitem__(i)
        if out is not None:
            out["index"] = i  # global: evaluation merges records by index
        return out

    def set_epoch(self, epoch):
        for p in self.datasets:
            p.set_epoch(epoch)


@register("pretrain")
class Pretrain(Task):
    main_metric = "ac_vtm"
    reads = ("size_part", "pretrain_tasks", "p_mask")
    multi_task_member = False
    has_baseline_head = False

    @classmethod
    def variant(cls, cfg):
        if cfg.head != "mlm":
            raise ConfigError("pretraining is implemented for the LAVENDER MLM model only (head: mlm)")
        return cls

    @classmethod
    def predict_family(cls, cfg, member=None):
        return "retrieval"  # its video-text matching is retrieval's phrasing

    def __init__(self, cfg, tokenizer, build_data=True):
        self.part_stores = []
        self.objectives = [t for t in ("mtm", "vtm") if t in cfg.pretrain_tasks]  # pretrain_tasks, in this order
        self.main_metric = "ac_vtm" if "vtm" in self.objectives else "ac_mtm"
        super().__init__(cfg, tokenizer, build_data)

    # ------------------------------------------------------------------ data
    @staticmethod
    def dataset_dirs(cfg):
        """{dataset name: folder}: `dataset` is a name, a list of names (all in data_dir) or, as the
        original allows, a dict {name: folder} (relative folders: from the repository root)."""
        d = cfg.dataset
        if isinstance(d, dict):
            return {n: repo_path(str(folder)) for n, folder in d.items()}
        names = [d] if isinstance(d, str) else list(d or [])
        if not names:
            raise ConfigError("pretraining needs 'dataset': a name, a list of names or a dict {name: folder}")
        return {n: cfg.data_dir for n in names}

    def data_dirs(self):
        return self.dataset_dirs(self.cfg)

    @classmethod
    def required_inputs(cls, cfg):
        """Per dataset its captions and its parts (with video_dir: the folder of videos)."""
        out = [Input("video files (video_dir)", cfg.video_dir, "videos")] if cfg.video_dir else []
        for name, folder in cls.dataset_dirs(cfg).items():
            out.append(Input(f"{name} captions", os.path.join(folder, f"txt_{name}.json"), "pretraining"))
            if cfg.video_dir:
                continue
            splits = ([f"train_{p}" for p in range(cls.n_parts_of(cfg, name))] if cfg.size_epoch > 0 else []) + \
                (["val"] if "val" in cfg.eval_splits else [])
            for split in splits:
                out += tsv_inputs(os.path.join(folder, f"{name}_{split}.tsv"), f"{name} part {split}", "pretraining")
        return out

    def n_parts(self, name):
        return self.n_parts_of(self.cfg, name)

    @staticmethod
    def n_parts_of(cfg, name):
        """size_part: one number for every dataset, or the original's dict {dataset: parts}."""
        sp = cfg.size_part
        if not isinstance(sp, dict):
            return sp
        if name not in sp:
            raise ConfigError(f"size_part {sp} has no entry for dataset {name!r}")
        return sp[name]

    def part(self, name, split):
        """ItemDataset over the rows of `{name}_{split}.tsv` (with `video_dir`: over the split's captioned
        videos in that folder, train ones dealt into size_part parts), captions from `txt_{name}.json`."""
        c = self.cfg
        frames = 1 if name in IMAGE_DATASETS or name in (c.image_datasets or []) else c.size_frame
        cap_split = "train" if split.startswith("train") else "val"
        caps = self._captions[name].get(cap_split, {})
        if c.video_dir:
            store = VideoFolderStore(c.video_dir, frames, c.size_img, c.img_transform, cache_dir=c.video_cache,
                                     sample=1 if frames == 1 else c.video_sample, skip_bad=c.skip_bad)
            if (name, cap_split) not in self._kept:  # checked (and skips counted) once per dataset and split
                self._kept[name, cap_split] = [it["video"] for it in check_videos(
                    [{"video": v} for v in caps], store, c.skip_bad, f"txt_{name}.json[{cap_split!r}]")]
            kept, n = self._kept[name, cap_split], self.n_parts(name)
            part = kept[int(split.split("_")[1])::n] if split.startswith("train_") else kept  # size_part parts
            if not part:
                raise DataError(f"size_part {n} is more than the {len(kept)} captioned videos of {name} in "
                                f"video_dir {c.video_dir}: lower size_part")
            store.select(part)
        else:
            store = VideoStore.from_tsv(os.path.join(self._dirs[name], f"{name}_{split}.tsv"), frames, c.size_img,
                                        img_transform=c.img_transform, frame_column=c.frame_column,
                                        skip_bad=c.skip_bad)
        self.part_stores.append(store)

        def encode(item, train, rng):
            captions = caps.get(item["video"])
            if not captions or not all(isinstance(t, str) for t in captions):
                raise DataError(f"txt_{name}.json[{cap_split!r}] has no caption for video {item['video']!r} "
                                f"(row {item['row']} of {store.path}; got {captions!r})")
            return self.encode_caption(captions, rng)
        # the part in the seed: rows with the same number in two parts draw different masks/crops
        return ItemDataset(RowItems(store.n_rows()), store, encode, split.startswith("train"),
                           seed=f"{c.seed}/{name}_{split}")

    def build_datasets(self):
        c = self.cfg
        self._dirs, self._kept = self.data_dirs(), {}
        names = list(self._dirs)
        self._captions = {n: load_annotation_file(os.path.join(d, f"txt_{n}.json")) for n, d in self._dirs.items()}
        if c.size_epoch > 0:
            keys = [(n, f"train_{p}") for n in names for p in range(self.n_parts(n))]
            self.datasets["train"] = Segmented([self.part(n, s) for n, s in keys], [f"{n}_{s}" for n, s in keys])
        if "val" in c.eval_splits:
            self.datasets["val"] = Segmented([self.part(n, "val") for n in names], names)

    def segments(self, split):
        return self.datasets[split].segments  # one per part: a batch never mixes two parts

    def stores(self):
        return self.part_stores

    def encode_caption(self, captions, rng):
        """First caption of a non-empty list, base-encoded, each non-special token masked with p_mask (label =
        its id; only when MTM is an objective), then the VTM [MASK] appended after the padding (never an MTM
        target)."""
        ids = self.ids
        p_mask = self.cfg.p_mask if "mtm" in self.objectives else 0.0
        txt, label = self.mask_tokens(self.encode_base(captions[0], self.cfg.size_txt), rng,
                                      keep={ids["cls"], ids["sep"], ids["pad"], ids["mask"]}, p=p_mask)
        txt = torch.tensor(txt + [ids["mask"]])
        return {"txt": txt, "mask": (txt != ids["pad"]).long(), "label": torch.tensor(label + [-1])}

    # ------------------------------------------------------------------ losses
    def losses(self, model, batch, generator=None):
        """({objective: loss}, {hit counts per example}) of the `pretrain_tasks` objectives on one batch."""
        feat, fmask = model.encode_video(batch["img"])
        emb = model.embed_text(batch["txt"], batch["mask"])
        mask, label = batch["mask"], batch["label"]
        B = feat.shape[0]
        pos = self.fused(model, None, None, mask, feat, fmask, emb)  # each video with its own caption
        losses, hits = {}, {}
        if "mtm" in self.objectives:
            logits, target = self.mlm_at(model, pos, label)
            losses["mtm"] = self.ce(logits, target) if len(target) else emb.sum() * 0
            row = (label >= 0).nonzero()[:, 0]  # example of each MTM target
            hits["mtm_hit"] = torch.bincount(row, (logits.argmax(-1) == target).float(), minlength=B)
            hits["mtm_n"] = torch.bincount(row, minlength=B)
        if "vtm" in self.objectives:
            # each video with its caption (true: the pass above is that pair, so it is not run again) and
            # O-1 captions of other batch items (false)
            O = min(B, self.cfg.size_batch, 4)
            last = pos[:, -1:]
            if O > 1:
                neg = [[j if j < i else j + 1 for j in torch.randperm(B - 1, generator=generator)[:O - 1].tolist()]
                       for i in range(B)]
                neg = torch.tensor(neg, device=feat.device).view(-1)
                # index_select, not emb[neg]: neg repeats captions, and the backward of an index with repeats
                # sums in thread order on the CPU (runs drift apart); index_select's sums in a fixed order
                hidden = self.fused(model, None, None, mask.index_select(0, neg), feat.repeat_interleave(O - 1, 0),
                                    fmask.repeat_interleave(O - 1, 0), emb.index_select(0, neg))
                last = torch.cat([last, hidden[:, -1].view(B, O - 1, -1)], 1)
            vtm_logits = model.mlm(last.reshape(B * O, -1))
            first = torch.arange(B * O, device=feat.device) % O == 0
            losses["vtm"] = self.ce(vtm_logits, torch.where(first, self.ids["true"], self.ids["false"]))
            tf = torch.tensor([self.ids["true"], self.ids["false"]], device=feat.device)
            score = true_false_scores(vtm_logits[:, tf], self.cfg.retrieval_score).view(B, O)
            hits["vtm_hit"] = (score.argmax(1) == 0).long()
        return losses, hits

    def train_step(self, model, batch, step=None):
        losses, n = self.losses(model, batch)
        stats = {f"ls_{k}": v.detach() for k, v in losses.items()}
        if "mtm" in losses:
            stats["ac_mtm"] = n["mtm_hit"].sum() / n["mtm_n"].sum().clamp(min=1)
        if "vtm" in losses:
            stats["ac_vtm"] = n["vtm_hit"].float().mean()
        return sum(losses.values()), stats

    def eval_step(self, model, batch):
        g = torch.Generator().manual_seed(int(batch["index"][0]))  # the same negatives every evaluation
        _, hits = self.losses(model, batch, g)
        return {"index": batch["index"], **hits}

    def summarize(self, records, split):
        ds = self.datasets[split]
        idx = records["index"]
        out, starts = {}, list(itertools.accumulate(ds.segments, initial=0))
        for name, a, b in zip(ds.names, starts, starts[1:]):
            sel = (idx >= a) & (idx < b)
            if "mtm" in self.objectives:
                out[f"ac_mtm_{name}"] = float(records["mtm_hit"][sel].sum() / max(records["mtm_n"][sel].sum(), 1))
            if "vtm" in self.objectives:
                out[f"ac_vtm_{name}"] = float(records["vtm_hit"][sel].mean()) if sel.any() else 0.0
        for k in self.objectives:
            out[f"ac_{k}"] = float(sum(out[f"ac_{k}_{n}"] for n in ds.names) / len(ds.names))
        return out
