"""Video captioning (MSRVTT, MSVD; docs/original.md#captioning-training-and-evaluation) as masked language
modelling with a seq2seq mask.

Data: SwinBERT's layout, one yaml per split (`train_yaml`, `val_yaml`, `test_yaml`, relative to
`data_dir`; `lavender.data.caption_data`), frames read with SwinBERT's column rule unless `frame_column`
is set. A split without a yaml is not evaluated; a yaml that is named but missing is an error.

Training: the caption is base-encoded to `size_txt`; each token other than [CLS]/[PAD] is replaced by
[MASK] with probability `p_mask`, drawn from the example's own RNG (reproducible, resumable); the label
is the original token. [SEP] is masked like a word: it is the token decoding must predict to stop (the
original could also mask [CLS], which decoding never predicts). The fusion encoder runs with the seq2seq
mask (visual tokens and pretext visible to every row, text causal) and the loss is `captioning_loss` at
the masked positions.

Evaluation: one caption per video, decoded in batches by `lavender.models.generation.generate` (greedy
as the original, or real beam search / sampling), scored with the COCO caption metrics
(`lavender.metrics.caption`: Bleu_1..4, METEOR, ROUGE_L, CIDEr) against the split's COCO-format
references (else its caption TSV). Predictions are written as the original names them,
`caption_predictions/ep{epoch}_pred.{yaml folder}.{yaml stem}[.beam{n}].max{max_gen_length}.tsv`
(rows `key \\t [{"caption", "conf"}]`, + `.eval.json` with the metrics), and returned for
`predictions_{split}.json`.
"""
import collections
import json
import logging
import math
import os
import random
import zlib

import torch
import torch.nn.functional as F

from ..data.caption_data import load_caption_split, split_inputs
from ..data.tsv import write_tsv
from ..engine.protocol import TARGETS
from ..errors import ConfigError, DataError
from ..fileio import atomic_json
from ..metrics.caption import caption_metrics, load_coco_references
from ..models.generation import GenerationConfig, decode_captions, generate
from ..paths import Input
from .base import Task
from .items import ItemDataset, subsample_videos
from .registry import register

log = logging.getLogger("lavender")

EVAL_SPLITS = ("val", "test")  # the splits with a yaml key (`{split}_yaml`)


def captioning_loss(logits, labels, label_smoothing=0.0, drop_worst_ratio=0.0):
    """SwinBERT's `CaptioningLoss` as it was meant to work (the original never read its options,
    docs/original.md#6-the-captioning-losss-options-are-never-read).

    Per token: KL divergence from the smoothed target (1 - eps on the label, eps / (V - 1) on every other
    class) to the predicted distribution; with eps = 0 this is the cross-entropy. `drop_worst_ratio` r
    then keeps only the int(n * (1 - r)) smallest token losses (at least one) before the mean.
    """
    logp = F.log_softmax(logits.float(), -1)
    if label_smoothing > 0:
        V = logits.shape[-1]
        target = torch.full_like(logp, label_smoothing / (V - 1))
        target.scatter_(1, labels[:, None], 1.0 - label_smoothing)
        loss = F.kl_div(logp, target, reduction="none").sum(1)
    else:
        loss = F.nll_loss(logp, labels, reduction="none")
    if drop_worst_ratio > 0:
        keep = max(1, int(loss.shape[0] * (1 - drop_worst_ratio)))
        loss = loss.topk(keep, largest=False).values
    return loss.mean()


def split_references(split):
    """{key: [caption, ...]} a split is scored against: its COCO-format json (what the original's evaluator
    read) if it has one, else the caption TSV. Every video of the split needs at least one."""
    if split.coco_gt:
        refs = {str(k): v for k, v in load_coco_references(split.coco_gt).items()}
        missing = [k for k in split.keys if not refs.get(k)]
        if missing:
            raise DataError(f"{split.coco_gt}: no reference caption for {len(missing)} video(s) of "
                            f"{split.yaml}, e.g. {missing[:5]}")
        return refs
    return split.references


def check_config(cfg):
    """Captioning keys that are refused rather than ignored."""
    where = cfg.get("config") or "config"
    if cfg.is_decoder:
        raise ConfigError(f"{where}: is_decoder true (decoding with the MLM head built as a decoder) is not "
                          "implemented, as in the original (NotImplementedError); leave it false")
    if not 0 <= cfg.label_smoothing < 1 or not 0 <= cfg.drop_worst_ratio < 1 or cfg.drop_worst_after < 0:
        raise ConfigError(f"{where}: need 0 <= label_smoothing < 1, 0 <= drop_worst_ratio < 1 and "
                          f"drop_worst_after >= 0 (got {cfg.label_smoothing}, {cfg.drop_worst_ratio}, "
                          f"{cfg.drop_worst_after})")
    other = [s for s in cfg.eval_splits if s not in EVAL_SPLITS]
    if other:
        raise ConfigError(f"{where}: captioning evaluates {' and '.join(EVAL_SPLITS)} (val_yaml, test_yaml); "
                          f"eval_splits has {other}")


def load_split(cfg, yaml, store=None):
    """One split of a config's captioning data (frames by SwinBERT's column rule unless `frame_column` is set;
    from `store` instead of the yaml's img TSV when given, e.g. the files of `video_dir`)."""
    column = "swinbert" if cfg.frame_column == "auto" else cfg.frame_column
    return load_caption_split(yaml, cfg.data_dir, cfg.size_frame, cfg.size_img, cfg.img_transform,
                              frame_column=column, skip_bad=cfg.skip_bad, store=store)


@register("captioning")
class Captioning(Task):
    """LAVENDER captioning: masked caption tokens predicted under the seq2seq mask; MLM decoding."""

    main_metric = "CIDEr"     # not bounded by 1: multi-task averages it as it is (typically 0-2)
    eval_start = True         # the original's captioning script always evaluates epoch 0
    prompt_name = task_token = "cap"
    has_baseline_head = False
    predicts = "a caption per video, with its confidence exp(mean log-probability)"
    reads = Task.reads + ("p_mask", "max_gen_length", "num_beams", "do_sample", "gen_temperature", "top_k", "top_p",
                          "repetition_penalty", "label_smoothing", "drop_worst_ratio", "drop_worst_after",
                          "caption_meteor", "caption_txt_causal")

    @classmethod
    def variant(cls, cfg):
        if cfg.head == "task_specific":
            raise ConfigError("captioning has only the MLM head (the original has no task-specific captioner); "
                              "use head mlm")
        return cls

    def __init__(self, cfg, tokenizer, build_data=True):
        check_config(cfg)
        self.generation = GenerationConfig.from_config(cfg, cfg.size_txt)
        self.splits, self.references = {}, {}
        super().__init__(cfg, tokenizer, build_data)

    # ------------------------------------------------------------------ data
    @classmethod
    def required_inputs(cls, cfg):
        """Each split's yaml and the TSVs it names (with video_dir: the videos instead of the img TSVs)."""
        out = [Input("video files (video_dir)", cfg.video_dir, "videos")] if cfg.video_dir else []
        wanted = (["train"] if cfg.size_epoch > 0 else []) + [s for s in EVAL_SPLITS if s in cfg.eval_splits]
        for split in wanted:
            if cfg[f"{split}_yaml"]:
                out += split_inputs(cfg[f"{split}_yaml"], cfg.data_dir, with_img=not cfg.video_dir)
        return out

    def build_datasets(self):
        c = self.cfg
        wanted = (["train"] if c.size_epoch > 0 else []) + [s for s in EVAL_SPLITS if s in c.eval_splits]
        yamls = {"train": c.train_yaml, "val": c.val_yaml, "test": c.test_yaml}
        for split in wanted:
            yaml = yamls[split]
            if not yaml:
                if split == "train":
                    raise ConfigError(f"{c.config}: captioning training needs train_yaml (or size_epoch 0)")
                log.info("captioning %s: no %s_yaml, %s is not evaluated", c.task, split, split)
                continue
            if c.video_dir and self.store is None:  # one store of video files serves every split
                self.store = self.make_store()
            data = load_split(c, yaml, self.store)
            self.splits[split] = data
            if split == "train":
                items = self.subsample(data.samples)
                self.datasets[split] = ItemDataset(items, data.store, self.encode, True, c.seed)
            else:  # one item per video: decoding never reads the reference captions
                self.references[split] = split_references(data)
                self.datasets[split] = ItemDataset([{"video": k} for k in data.keys], data.store,
                                                   lambda item, train, rng: {}, False, c.seed)

    def subsample(self, samples):
        """data_ratio: < 1 keeps that fraction of videos (all their captions), > 1 that many samples
        (docs/original.md#data_ratio-and-reinit_head)."""
        r = self.cfg.data_ratio
        if r == 1.0:
            return samples
        if r < 1:
            return subsample_videos(samples, r, self.cfg.seed)
        keep = set(random.Random(self.cfg.seed).sample(range(len(samples)), min(int(r), len(samples))))
        return [s for i, s in enumerate(samples) if i in keep]

    def encode(self, item, train, rng):
        ids = self.ids
        txt, labels = self.mask_tokens(self.encode_base(item["caption"], self.cfg.size_txt), rng,
                                       keep={ids["cls"], ids["pad"], ids["mask"]})
        txt = torch.tensor(txt)
        return {"txt": txt, "mask": (txt != ids["pad"]).long(), "labels": torch.tensor(labels)}

    # ------------------------------------------------------------------ contract
    def train_step(self, model, batch, step=None):
        c = self.cfg
        # the text's own encoder (if any): causal as decoding sees the text, or the original's bidirectional
        emb = model.embed_text(batch["txt"], batch["mask"], causal=c.caption_txt_causal)
        hidden = self.fused(model, batch["img"], batch["txt"], batch["mask"], feat_txt=emb, attn="seq2seq")
        logits, labels = self.mlm_at(model, hidden, batch["labels"])
        if labels.numel() == 0:  # nothing masked in the whole batch (short captions, small p_mask): no update
            return hidden.sum() * 0, {TARGETS: 0}
        # drop_worst_after counts this task's training batches (outside a run: no count, the ratio applies)
        drop = c.drop_worst_ratio if step is None or step.batches > c.drop_worst_after else 0.0
        loss = captioning_loss(logits, labels, c.label_smoothing, drop)
        return loss, {"ac": (logits.argmax(-1) == labels).float().mean(), TARGETS: labels.numel()}

    def decode_step(self, model, batch):
        """Generated ids and scores of a batch of videos."""
        img = batch["img"]
        g = None
        if self.generation.do_sample:  # draws depend on the run's seed and the batch, not on the global RNG
            g = torch.Generator(device=img.device)
            g.manual_seed(zlib.crc32(f"{self.cfg.seed}/{int(batch['index'][0])}".encode()))
        out = generate(model, img, self.ids, self.generation, pretext=self.pretext(model, img.shape[0]),
                       generator=g)
        return {"index": batch["index"], "ids": out.ids, "score": out.scores}

    def predict(self, model, batches):
        """Per video (caption, confidence = exp(mean log-prob)), decoded with the MLM head."""
        if not model.has_mlm:
            raise ConfigError("captions are decoded with the MLM head; this checkpoint has a task-specific head")
        out = []
        for idx, img in batches:
            res = generate(model, img, self.ids, self.generation, pretext=self.pretext(model, len(idx)))
            out.extend(zip(decode_captions(self.tok, res.ids), res.scores.float().exp().tolist()))
        return out

    def evaluate(self, split, ctx):
        """Decode every video of `split` once (over all processes), score on the main process, broadcast."""
        data, refs = self.splits[split], self.references[split]
        records = ctx.records(self.decode_step, self.loader(split, ctx.dist, ctx.device), desc=f"caption {split}")
        if not records:
            raise DataError(f"{data.yaml}: no video could be decoded (all skipped)")
        keys = [data.keys[int(i)] for i in records["index"]]
        captions = decode_captions(self.tok, records["ids"])
        confs = [math.exp(float(s)) for s in records["score"]]
        metrics = None
        if ctx.main:
            metrics = caption_metrics(refs, dict(zip(keys, captions)), meteor=self.cfg.caption_meteor)
            metrics["n"] = len(keys)
            if ctx.out_dir:
                self.write_predictions(ctx, data, keys, captions, confs, metrics)
        metrics = ctx.broadcast(metrics)
        preds = [{"video": k, "caption": c, "conf": p, "references": refs[k]}
                 for k, c, p in zip(keys, captions, confs)]
        return metrics, preds

    def prediction_file(self, out_dir, epoch, yaml):
        """The original's name: ep{epoch}_pred.{yaml folder}.{yaml stem}[.beam{n}].max{max_gen_length}.tsv
        (`.beam{n}` only for beam search: the original added it when the key was set, which no config does)."""
        g = self.generation
        parts = [f"ep{epoch}_pred", os.path.basename(os.path.dirname(os.path.abspath(yaml))),
                 os.path.splitext(os.path.basename(yaml))[0]]
        if g.num_beams > 1:
            parts.append(f"beam{g.num_beams}")
        parts.append(f"max{g.max_gen_length}")
        return os.path.join(out_dir, "caption_predictions", ".".join(parts) + ".tsv")

    def write_predictions(self, ctx, data, keys, captions, confs, metrics):
        path = self.prediction_file(ctx.out_dir, ctx.epoch, data.yaml)
        if os.path.exists(path):  # the original silently reused such a file (docs/original.md#20-output-folders-and-stale-prediction-files)
            log.warning("replacing %s with this evaluation's predictions", path)
        write_tsv(path, ([k, json.dumps([{"caption": c, "conf": p}])] for k, c, p in zip(keys, captions, confs)))
        atomic_json(metrics, os.path.splitext(path)[0] + ".eval.json")

    def stores(self):
        return list({id(s.store): s.store for s in self.splits.values()}.values())


def most_frequent_caption(captions):
    """The most frequent caption (the first seen among equals)."""
    return collections.Counter(captions).most_common(1)[0][0]


def blind_baseline(train, split, meteor=True):
    """The video-blind baseline: the most frequent training caption predicted for every video of `split`
    (CaptionSplit objects), scored like the model. Returns (caption, metrics)."""
    caption = most_frequent_caption([s["caption"] for s in train.samples])
    return caption, caption_metrics(split_references(split), {k: caption for k in split.keys}, meteor=meteor)
