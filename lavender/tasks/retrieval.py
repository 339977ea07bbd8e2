"""Text-to-video retrieval (MSRVTT, DiDeMo, MSVD, LSMDC) as video-text matching at a [MASK]
(docs/original.md#retrieval-training-and-evaluation): the text is followed by a [MASK] whose "true"/"false" says whether it matches.

Training: every (video i, text j) pair of a batch, "true" iff same video. Evaluation (fp32 unless
`precision` is set; `multi_clip_testing` averages each video's tokens over its clips): every
(text, video) pair of the split: each video is encoded once, then only the fusion encoder runs,
over many texts per pass, and only the two vocabulary rows "true"/"false" of the MLM head are
computed. Videos are split over processes and the score columns gathered.
`RetrievalTS` (`head: task_specific`) is the original's scalar-head baseline with the NormSoftmax loss.
"""
import os

import torch
import torch.nn.functional as F

from ..fileio import atomic_npy
from .base import Task
from .modeling import true_false_scores
from .registry import register
from .retrieval_scoring import eval_precision, score_all_pairs, score_columns


def caption_text(caption, train, rng):
    """A caption string; lists (DiDeMo paragraphs) are joined, in train a random subset in random order."""
    if isinstance(caption, str):
        return caption
    caption = [str(c) for c in caption]
    if train and len(caption) > 1:
        k = rng.randint(1, len(caption))
        caption = rng.sample(caption, k)
    return " ".join(caption)


@register("retrieval")
class Retrieval(Task):
    """LAVENDER: "true"/"false" at a [MASK] appended after the text, for every (video, text) pair."""

    main_metric = "r@1"       # text->video R@1 on val picks the best checkpoint
    main_scale = 100.0        # recall is in percent
    reads = Task.reads + ("multi_clip_testing",)
    required_fields = ("caption",)
    field_kinds = {"caption": "texts"}
    pair_head = True
    predicts = "the score of a text against each video (P(true) of its true/false, as evaluation ranks)"

    @classmethod
    def variant(cls, cfg):
        return RetrievalTS if cfg.head == "task_specific" else cls

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

    def texts_to_fit(self, item):
        return [(caption_text(item["caption"], False, None), self.cfg.size_txt - 2)]

    def text_ids(self, text):
        """Base encode to S + a [MASK] after the padding (where "true"/"false" is read)."""
        return self.encode_base(text, self.cfg.size_txt) + [self.ids["mask"]]

    def encode_text(self, text):
        txt = torch.tensor(self.text_ids(text))
        return txt, (txt != self.ids["pad"]).long()

    def encode_queries(self, items):
        """(txt [N, L], mask [N, L]) of the evaluation texts of `items` (lists: joined in order)."""
        enc = [self.encode_text(caption_text(it.get("caption", ""), False, None)) for it in items]
        return torch.stack([e[0] for e in enc]), torch.stack([e[1] for e in enc])

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
        return true_false_scores(model.mlm(hidden[:, -1], rows=tf_ids), self.cfg.retrieval_score)

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

    def train_step(self, model, batch, step=None):
        scores, logits, same = self._all_pairs(model, batch)
        acc = same[torch.arange(len(scores)), scores.argmax(1)].float().mean()
        return self.pair_loss(logits, same), {"ac": acc}

    # ------------------------------------------------------------------ full evaluation
    def evaluate(self, split, ctx):
        """Every (text, video) pair of `split` scored (retrieval_scoring); writes scores_{split}.npy."""
        ctx = ctx.with_precision(eval_precision(self.cfg, ctx.device))
        metrics, scores = score_all_pairs(self, self.datasets[split].items, ctx, desc=f"retrieval {split}")
        if ctx.main and ctx.out_dir:
            atomic_npy(scores, os.path.join(ctx.out_dir, f"scores_{split}.npy"))
        return metrics, None

    def predict(self, model, batches, text):
        """Per video the score of `text` against it."""
        txt, mask = self.encode_text(text)
        scores, device = {}, next(model.parameters()).device
        idx, cols = score_columns(self, model, batches, txt[None].to(device), mask[None].to(device), chunk=1)
        for i, c in zip(idx, cols):
            scores[i] = float(c[0])
        return [scores[i] for i in sorted(scores)]


class RetrievalTS(Retrieval):
    """Baseline: a scalar MLP head per (video, text) pair, NormSoftmax (symmetric InfoNCE) loss."""

    reads = Retrieval.reads + ("temp",)

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
