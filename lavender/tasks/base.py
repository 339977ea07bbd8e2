"""The task contract and what every task shares: the dataset over (video, annotation item) pairs,
the pretext (task token / prompt), and running the model with MLM logits only where they are needed.

The engine (`lavender.engine.trainer`) calls a task only through the methods of `Task` listed under
"contract" below. A task family subclasses `Task` and usually writes four things: `encode` (item ->
token ids + labels), `train_step`, `eval_step` and `summarize`; a family whose evaluation is not a
loop over batches (retrieval's all-pairs scoring, captioning's decoding) overrides `evaluate`.
The head (MLM or a task-specific baseline head) is decided by which class is built
(`lavender.tasks.build_task`), never by branches inside a class.
"""
import logging
import os
import random
import zlib

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.collate import collate_dicts
from ..errors import DataError
from ..data.video_store import VideoStore, load_annotation_file, load_annotations
from ..engine.loader import EpochLoader
from ..tokenizer import special_ids

log = logging.getLogger("lavender")

# Prompt sentences of the original (SPEC §2.8); used only with enable_prompt.
PROMPTS = {
    "oe": "answer the question about the video.",
    "fib": "fill in the mask to complete the sentence.",
    "mc": "which answer is correct, from [0, 1, 2, 3, 4]?",
    "vtm": "is the video-text paired, true or false?",
    "retmc": "is the video-text matched, true or false?",
    "cap": "write a description about the video.",
}


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


class Task:
    """Base class: builds datasets from `{data_dir}/img_{dataset}.tsv` + `txt_{task}.json`."""

    main_metric = "ac"        # the metric of `summarize` whose val value picks the best checkpoint
    main_scale = 1.0          # multi-task averages main_metric / main_scale (accuracy-like: 0-1)
    prompt_name = "vtm"       # key of PROMPTS (enable_prompt; SPEC §2.8)
    task_token = "vtm"        # row of the model's task-token table (enable_task_token; SPEC §2.8)
    head_name = "fc"          # task-specific baselines: the model's MLP head they use
    reads = ("data_ratio",)   # the keys of lavender.config.TASK_KEYS this class honours
    required_fields = ()      # annotation fields every item of this family needs (besides "video")

    def __init__(self, cfg, tokenizer, build_data=True):
        self.cfg, self.tok = cfg, tokenizer
        self.ids = special_ids(tokenizer)
        self.datasets, self.store = {}, None
        if build_data:
            self.build_datasets()

    # ------------------------------------------------------------------ data
    def annotation_path(self):
        return os.path.join(self.cfg.data_dir, f"txt_{self.cfg.task}.json")

    def make_store(self):
        c = self.cfg
        return VideoStore(c.data_dir, c.dataset, c.size_frame, c.size_img, c.img_transform,
                          frame_column=c.frame_column, skip_bad=c.skip_bad)

    def build_datasets(self):
        c = self.cfg
        self.store = self.make_store()
        path = self.annotation_path()
        self.annotations = load_annotation_file(path)
        for split in self.data_splits(path):
            items = self.prepare_items(load_annotations(path, split, self.store, c.skip_bad), split)
            if c.data_ratio != 1.0 and split == "train":
                items = _subsample(items, c.data_ratio, c.seed)
            self.check_items(items, path, split)
            self.datasets[split] = ItemDataset(items, self.store, self.encode, split == "train", c.seed)

    def data_splits(self, path):
        """The splits to build: train (when training) and the eval splits the annotation file has. A
        missing val split, or any missing split the user asked for by name (eval_splits), is an error."""
        c = self.cfg
        have = [s for s in c.eval_splits if s in self.annotations]
        absent = [s for s in c.eval_splits if s not in self.annotations]
        required = absent if "eval_splits" in c.user_keys else [s for s in absent if s == "val"]
        if required:
            raise DataError(f"{path} has no split {required[0]!r} to evaluate (splits present: "
                            f"{[k for k in self.annotations if k != 'ans2label']}); set eval_splits to the ones it has")
        for s in absent:
            log.info("%s has no %r split: not evaluated", path, s)
        return (["train"] if c.size_epoch > 0 else []) + have

    def missing_fields(self, item):
        """The fields `item` lacks for this task (empty: usable)."""
        return [f for f in self.required_fields if f not in item]

    def check_items(self, items, path, split):
        """At start-up, not mid-epoch: an empty split or an item without its fields is a DataError."""
        if not items:
            ratio = " (after data_ratio)" if split == "train" and self.cfg.data_ratio != 1.0 else ""
            raise DataError(f"{path}[{split!r}] has no items{ratio}: nothing to "
                            f"{'train on' if split == 'train' else 'evaluate'}")
        bad = [(i, m) for i, m in ((i, self.missing_fields(it)) for i, it in enumerate(items)) if m]
        if bad:
            i, missing = bad[0]
            raise DataError(f"{path}[{split!r}] item {i} (video {items[i].get('video')!r}) lacks {missing} "
                            f"({len(bad)} item(s) in all); a {type(self).__name__} item needs "
                            f"{['video', *self.required_fields]}")

    def prepare_items(self, items, split):
        """Hook: filter or expand a split's items (e.g. one caption per video)."""
        return items

    # ------------------------------------------------------------------ text helpers
    def tokens(self, text):
        """WordPiece ids of `text` without [CLS]/[SEP]."""
        return self.tok.encode(text, add_special_tokens=False) if text else []

    def encode_base(self, text, length):
        """`[CLS] text [SEP] [PAD]...` of exactly `length` ids (the original's str2txt)."""
        ids = [self.ids["cls"]] + self.tokens(text)[: length - 2] + [self.ids["sep"]]
        return ids + [self.ids["pad"]] * (length - len(ids))

    def mask_tokens(self, ids, rng, keep, p=None):
        """Each token of `ids` not in `keep` replaced by [MASK] with probability `p` (default `p_mask`), drawn from
        `rng` (the example's own RNG: reproducible and resumable). Returns (ids, labels): labels hold
        the original id at masked positions and -1 elsewhere."""
        p = self.cfg.p_mask if p is None else p
        ids, labels = list(ids), [-1] * len(ids)
        for k, t in enumerate(ids):
            if t not in keep and rng.random() < p:
                ids[k], labels[k] = self.ids["mask"], t
        return ids, labels

    def single_token(self, word):
        """Id of `word` if it is exactly one in-vocabulary WordPiece, else -1."""
        toks = self.tokens(str(word))
        return toks[0] if len(toks) == 1 and toks[0] != self.ids["unk"] else -1

    # ------------------------------------------------------------------ model helpers
    def pretext(self, model, batch_size, name=None):
        """Task token or prompt prepended to the text (both off in the shipped configs); `name` picks
        another family's (e.g. "cap" for caption decoding), default this task's `prompt_name`/`task_token`."""
        c = self.cfg
        if c.enable_prompt:
            ids = [self.ids["cls"]] + self.tokens(PROMPTS[name or self.prompt_name]) + [self.ids["sep"]]
            dev = next(model.parameters()).device
            return model.pretext(batch_size, prompt_ids=torch.tensor(ids, device=dev))
        if c.enable_task_token:
            return model.pretext(batch_size, task_token=c.task_token or name or self.task_token)
        return None

    def fused(self, model, img, txt, mask, feat_img=None, mask_img=None, feat_txt=None, attn="full"):
        """Text-part hidden states of the fusion encoder, pretext positions dropped. Precomputed
        video features / text embeddings may be passed to avoid recomputing them per pair; `attn` is
        the attention mask ("full", or "seq2seq" for captioning)."""
        if feat_img is None:
            feat_img, mask_img = model.encode_video(img)
        if feat_txt is None:
            feat_txt = model.embed_text(txt, mask, causal=attn == "seq2seq")
        pre = self.pretext(model, mask.shape[0])
        hidden = model.fuse(feat_img, mask_img, feat_txt, mask, pretext=pre, attn=attn)
        return hidden[:, hidden.shape[1] - mask.shape[1]:]

    @staticmethod
    def mlm_at(model, hidden, labels):
        """MLM logits only at positions with a label >= 0 (the vocabulary projection is the
        costliest part of the head: no need to run it at every position)."""
        sel = labels >= 0
        return model.mlm(hidden[sel]), labels[sel]

    @staticmethod
    def ce(logits, labels):
        return F.cross_entropy(logits.float(), labels)

    @staticmethod
    def ce_valid(logits, labels):
        """Cross-entropy averaged over the rows with a label >= 0 (0 when there is none). No boolean
        indexing, so no dynamic shapes and no host-device sync in the training step."""
        valid = labels >= 0
        per_row = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
        return (per_row * valid).sum() / valid.sum().clamp(min=1)

    # ------------------------------------------------------------------ contract (what the engine calls)
    def heads(self):
        """The model heads this task needs: {name: outputs}, None for the MLM head `fc_mtm`."""
        return {"fc_mtm": None}

    def tracked_metrics(self):
        """{label: metric}: val metrics whose best epoch is recorded ("" = the run's main metric,
        whose best epoch's weights are copied to `*_best.pt`)."""
        return {"": self.main_metric}

    def eval_splits(self):
        """The splits evaluated after each epoch (those of `cfg.eval_splits` that this task has)."""
        return [s for s in self.cfg.eval_splits if s in self.datasets]

    def segments(self, split):
        """Consecutive index ranges the sampler must keep apart within a batch (None: one range)."""
        return None

    def loader(self, split, dist, device):
        """The batches of `split` for this process (`lavender.engine.loader.EpochLoader`): shuffled
        per epoch and padded to equal steps per rank for training, each example once for evaluation."""
        c, train = self.cfg, split == "train"
        bs = c.size_batch if train or not c.size_batch_eval else c.size_batch_eval
        return EpochLoader(self.datasets[split], self.collate, bs, dist, shuffle=train, seed=c.seed,
                           segments=self.segments(split), workers=c.n_workers, pin_memory=device.type == "cuda")

    def collate(self, batch):
        return collate_dicts(batch)

    def train_step(self, model, batch):
        """(loss, {stat: float or 0-d tensor}) of one training batch; stats are averaged per epoch."""
        raise NotImplementedError

    def eval_step(self, model, batch):
        """{name: per-example array} of one evaluation batch (with "index" to merge across ranks)."""
        raise NotImplementedError

    def summarize(self, records, split):
        """Metrics {name: number} of a split from the merged records of `eval_step`."""
        raise NotImplementedError

    def predictions(self, records, split):
        """Per-example predictions to write to `predictions_{split}.json` (None: none)."""
        return None

    def evaluate(self, split, ctx):
        """(metrics, predictions) of one split. `ctx` (`lavender.engine.evaluation.EvalContext`) holds
        the model, the process group, the precision, the run folder and the epoch."""
        records = ctx.records(self.eval_step, self.loader(split, ctx.dist, ctx.device), desc=f"eval {split}")
        return self.summarize(records, split), self.predictions(records, split)

    def stores(self):
        """The frame stores whose skipped videos (skip_bad) are reported at the end of a run."""
        return [self.store] if self.store is not None else []

    # ------------------------------------------------------------------ family helpers
    def encode(self, item, train, rng):
        """Token ids, mask and labels of one annotation item (tensors)."""
        raise NotImplementedError


def true_false_scores(logits_tf, rule="prob"):
    """Score of "true" from (true, false) logits [..., 2].

    "prob": softmax probability of true = sigmoid(l_true - l_false) — monotone, what we rank by.
    "ratio": the original's l_true / (l_true + l_false) on raw logits (can flip rankings; SPEC §9 #6).
    """
    lt, lf = logits_tf[..., 0].float(), logits_tf[..., 1].float()
    if rule == "ratio":
        return lt / (lt + lf)
    return torch.sigmoid(lt - lf)


def _subsample(items, ratio, seed):
    """data_ratio: <1 keeps that fraction of videos (with all their items), >1 that many videos."""
    vids = sorted({it["video"] for it in items})
    random.Random(seed).shuffle(vids)
    keep = set(vids[: int(-(-len(vids) * ratio // 1)) if ratio < 1 else int(ratio)])
    return [it for it in items if it["video"] in keep]
