"""Model helpers every task family shares: the pretext (task token or prompt), the fused text-part states,
MLM logits only where they are needed, the losses, and true/false scores."""
import torch
import torch.nn.functional as F

__all__ = ["ModelHelpers", "true_false_scores"]


class ModelHelpers:
    """Needs `self.cfg`, `self.ids`, `self.tokens` and `self.prompt` (TextHelpers)."""

    def pretext(self, model, batch_size, name=None):
        """Task token or prompt prepended to the text (both off in the shipped configs); `name` picks
        another family's (e.g. "cap" for caption decoding), default this task's `prompt_name`/`task_token`."""
        c = self.cfg
        if c.enable_prompt:
            ids = [self.ids["cls"]] + self.tokens(self.prompt(name or self.prompt_name)) + [self.ids["sep"]]
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

def true_false_scores(logits_tf, rule="prob"):
    """Score of "true" from (true, false) logits [..., 2].

    "prob": softmax probability of true = sigmoid(l_true - l_false) — monotone, what we rank by.
    "ratio": the original's l_true / (l_true + l_false) on raw logits (can flip rankings; docs/original.md#5-scores-from-raw-logit-ratios).
    """
    lt, lf = logits_tf[..., 0].float(), logits_tf[..., 1].float()
    if rule == "ratio":
        return lt / (lt + lf)
    return torch.sigmoid(lt - lf)
