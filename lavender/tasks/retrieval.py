"""Text-to-video retrieval (MSRVTT, DiDeMo, MSVD, LSMDC) as video-text matching at a [MASK]
(SPEC §5.6): the text is followed by a [MASK] whose "true"/"false" says whether it matches.

Training: every (video i, text j) pair of a batch, "true" iff same video. Evaluation (fp32 unless
`precision` is set; `multi_clip_testing` averages each video's tokens over its clips): every
(text, video) pair of the split: each video is encoded once, then only the fusion encoder runs,
over many texts per pass, and only the two vocabulary rows "true"/"false" of the MLM head are
computed. Videos are split over processes and the score columns gathered.
`RetrievalTS` (`head: task_specific`) is the original's scalar-head baseline with the NormSoftmax loss.
"""
import json
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from ..engine import dist as D
from ..engine.loader import EpochLoader
from ..engine.logs import progress
from ..engine.precision import autocast, resolve_precision
from ..fileio import atomic_json, atomic_npy
from ..metrics import ranks_from_scores, retrieval_metrics
from .base import ItemDataset, Task, true_false_scores

log = logging.getLogger("lavender")


def caption_text(caption, train, rng):
    """A caption string; lists (DiDeMo paragraphs) are joined, in train a random subset in random order."""
    if isinstance(caption, str):
        return caption
    caption = [str(c) for c in caption]
    if train and len(caption) > 1:
        k = rng.randint(1, len(caption))
        caption = rng.sample(caption, k)
    return " ".join(caption)


def mlm_tokens(model, hidden, token_ids):
    """MLM logits of only `token_ids` (e.g. true/false): the head's transform, then just those rows."""
    pred = model.fc_mtm.predictions
    h = pred.transform(hidden)
    return F.linear(h, pred.decoder.weight[token_ids], pred.bias[token_ids])


class Retrieval(Task):
    """LAVENDER: "true"/"false" at a [MASK] appended after the text, for every (video, text) pair."""

    main_metric = "r@1"       # text->video R@1 on val picks the best checkpoint
    main_scale = 100.0        # recall is in percent
    reads = Task.reads + ("multi_clip_testing",)
    required_fields = ("caption",)

    def __init__(self, cfg, tokenizer, build_data=True, all_queries=False):
        self.all_queries = all_queries  # full evaluation: every item a query (else one per video)
        super().__init__(cfg, tokenizer, build_data)

    def prepare_items(self, items, split):
        if split == "train" or self.all_queries:
            return items
        seen, out = set(), []  # in-training val/test: one caption item per video, as the original
        for it in items:
            if it["video"] not in seen:
                seen.add(it["video"])
                out.append(it)
        return out

    def text_ids(self, text):
        """Base encode to S + a [MASK] after the padding (where "true"/"false" is read)."""
        return self.encode_base(text, self.cfg.size_txt) + [self.ids["mask"]]

    def encode_text(self, text):
        txt = torch.tensor(self.text_ids(text))
        return txt, (txt != self.ids["pad"]).long()

    def encode(self, item, train, rng):
        txt, mask = self.encode_text(caption_text(item.get("caption", ""), train, rng))
        return {"txt": txt, "mask": mask}

    # ------------------------------------------------------------------ pair scoring
    def pair_scores(self, model, feat, fmask, emb, mask, return_logits=False):
        """Scores of aligned pairs (row k: video features feat[k], text embeddings emb[k]); with
        `return_logits` also the training logits (full vocabulary at the [MASK])."""
        hidden = self.fused(model, None, None, mask, feat, fmask, feat_txt=emb)
        tf_ids = torch.tensor([self.ids["true"], self.ids["false"]], device=mask.device)
        if return_logits:
            logits = model.mlm(hidden[:, -1])
            return true_false_scores(logits[:, tf_ids], self.cfg.retrieval_score), logits
        return true_false_scores(mlm_tokens(model, hidden[:, -1], tf_ids), self.cfg.retrieval_score)

    def _all_pairs(self, model, batch):
        """B x B in-batch pairs (row video i, column text j)."""
        feat, fmask = model.encode_video(batch["img"])
        emb = model.embed_text(batch["txt"], batch["mask"])  # each video and text encoded once, then paired
        B = feat.shape[0]
        f = feat.repeat_interleave(B, 0)
        m = fmask.repeat_interleave(B, 0)
        e = emb.repeat(B, 1, 1)
        k = batch["mask"].repeat(B, 1)
        scores, logits = self.pair_scores(model, f, m, e, k, return_logits=True)
        vids = batch["video"]
        same = torch.tensor([[a == b for b in vids] for a in vids], device=feat.device)
        return scores.view(B, B), logits, same

    def pair_loss(self, logits, same):
        """Cross-entropy of "true" for matching pairs and "false" for the others."""
        return self.ce(logits, torch.where(same.view(-1), self.ids["true"], self.ids["false"]))

    def train_step(self, model, batch):
        scores, logits, same = self._all_pairs(model, batch)
        acc = same[torch.arange(len(scores)), scores.argmax(1)].float().mean()
        return self.pair_loss(logits, same), {"ac": acc}

    # ------------------------------------------------------------------ full evaluation
    def evaluate(self, split, ctx):
        metrics, scores = score_all_pairs(self, ctx.model, self.datasets[split].items, ctx.dist,
                                          self.cfg, desc=f"retrieval {split}",
                                          precision=eval_precision(self.cfg, ctx.device))
        if ctx.dist.main and ctx.out_dir:
            atomic_npy(scores, os.path.join(ctx.out_dir, f"scores_{split}.npy"))
        return metrics, None


class RetrievalTS(Retrieval):
    """Baseline: a scalar MLP head per (video, text) pair, NormSoftmax (symmetric InfoNCE) loss."""

    def heads(self):
        return {self.head_name: 1}

    def text_ids(self, text):
        return self.encode_base(text, self.cfg.size_txt)

    def pair_scores(self, model, feat, fmask, emb, mask, return_logits=False):
        hidden = self.fused(model, None, None, mask, feat, fmask, feat_txt=emb)
        logit = model.head(hidden, self.head_name)[:, 0]
        return (logit, logit) if return_logits else torch.sigmoid(logit.float())

    def pair_loss(self, logits, same):
        S = logits.view(same.shape).float() / self.cfg.temp
        target = torch.arange(len(S), device=S.device)
        return F.cross_entropy(S, target) + F.cross_entropy(S.t(), target)


def eval_precision(cfg, device):
    """Precision of full retrieval evaluation: fp32 unless `precision` names one (the original evaluated in
    fp32; fp16 scores tie more often, and ties change R@K), whatever `deepspeed` says for training."""
    return "fp32" if cfg.precision == "auto" else resolve_precision(cfg, device)


def encode_clips(model, img):
    """Visual tokens of (B, T, 3, H, W) clips, or of (B, C, T, 3, H, W) with C clips per video
    (multi_clip_testing): each clip through the visual encoder, then the tokens averaged over the clips."""
    if img.dim() == 5:
        return model.encode_video(img)
    B, C = img.shape[:2]
    feat, mask = model.encode_video(img.flatten(0, 1))
    return feat.view(B, C, *feat.shape[1:]).mean(1), mask.view(B, C, -1)[:, 0]


def score_all_pairs(task, model, items, dist_info, cfg, desc="retrieval", precision="fp32"):
    """Score every (text, video) pair of `items` (under `precision`: fp32/fp16/bf16; with
    `multi_clip_testing` each video's tokens are averaged over its clips, SPEC §4.1);
    returns (metrics, score matrix [texts, videos])."""
    model.eval()
    device = dist_info.device
    videos = list(dict.fromkeys(it["video"] for it in items))
    vid2idx = {v: i for i, v in enumerate(videos)}
    gt = np.array([vid2idx[it["video"]] for it in items])
    enc = [task.encode_text(caption_text(it.get("caption", ""), False, None)) for it in items]
    txt = torch.stack([e[0] for e in enc]).to(device)
    mask = torch.stack([e[1] for e in enc]).to(device)

    multi = bool(cfg.multi_clip_testing)
    vds = ItemDataset([{"video": v} for v in videos], task.store, lambda *a: {}, train=False, seed=cfg.seed,
                      multi_clip=multi)
    # multi-clip: one video per batch (videos have different numbers of clips; its clips are one batch)
    loader = EpochLoader(vds, task.collate, 1 if multi else max(1, min(8, cfg.size_batch)), dist_info,
                         shuffle=False, seed=cfg.seed, workers=cfg.n_workers)
    batches = ((b["index"].tolist(), b["img"]) for b in loader if b)
    pbar = progress(dist_info.main, total=len(loader.sampler), desc=f"{desc} ({len(items)} texts x {len(videos)} videos)")
    chunk = cfg.retrieval_text_batch or (512 if device.type == "cuda" else 64)
    with autocast(precision, device):
        col_idx, cols = score_columns(task, model, batches, txt, mask, chunk, pbar)
    if pbar:
        pbar.close()
    scores = np.full((len(items), len(videos)), -np.inf, dtype=np.float32)
    for idx, cs in D.all_gather_object((col_idx, cols)):
        for i, c in zip(idx, cs):
            scores[:, i] = c
    t2v = ranks_from_scores(scores, gt)
    v2t = ranks_from_scores(scores.T, [np.nonzero(gt == v)[0] for v in range(len(videos))])
    metrics = retrieval_metrics(t2v)
    metrics.update(retrieval_metrics(v2t, prefix="v2t_"))
    metrics.update({"n_text": len(items), "n_video": len(videos)})
    return metrics, scores


@torch.no_grad()
def score_columns(task, model, video_batches, txt, mask, chunk, pbar=None):
    """Score columns for batches of (video indices, clips): each clip is encoded once, then fused
    with every text, `chunk` texts per pass. Returns (video indices, [score column per video])."""
    device = txt.device
    n_t = len(txt)
    emb = model.embed_text(txt, mask)  # text embeddings once for all videos
    col_idx, cols = [], []
    for index, img in video_batches:
        feats, fmasks = encode_clips(model, img.to(device))
        for b in range(len(feats)):
            col = torch.empty(n_t, device=device)
            for s in range(0, n_t, chunk):
                e = min(s + chunk, n_t)
                f = feats[b:b + 1].expand(e - s, -1, -1)
                m = fmasks[b:b + 1].expand(e - s, -1)
                col[s:e] = task.pair_scores(model, f, m, emb[s:e], mask[s:e]).float()
            cols.append(col.cpu().numpy())
            col_idx.append(int(index[b]))
            if pbar:
                pbar.update(1)
    return col_idx, cols


def evaluate_checkpoint(cfg, task, model, dist_info, split="test"):
    """`eval_retrieval_tsv.py`: every test item is a query; writes scores .npy + metrics.json."""
    items = task.datasets[split].items
    model.to(dist_info.device)
    precision = eval_precision(cfg, dist_info.device)
    log.info("full retrieval evaluation in %s%s", precision, ", multi-clip testing" if cfg.multi_clip_testing else "")
    metrics, scores = score_all_pairs(task, model, items, dist_info, cfg, desc=f"retrieval {split}",
                                      precision=precision)
    if dist_info.main:
        out = cfg.path_output
        atomic_npy(scores, os.path.join(out, f"scores_{split}.npy"))
        res = {split: metrics, "retrieval_score": cfg.retrieval_score, "checkpoint": cfg.path_ckpt,
               "size_frame": cfg.size_frame, "size_img": cfg.size_img,
               "multi_clip_testing": bool(cfg.multi_clip_testing), "precision": precision}
        atomic_json(res, os.path.join(out, "metrics.json"))
        log.info("%s: %s", split, json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                               for k, v in metrics.items()}))
    return metrics, scores

