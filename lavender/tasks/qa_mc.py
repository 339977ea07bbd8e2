"""Multiple-choice QA, in the original's two MLM phrasings (SPEC §5.4, §5.5):

* "digit" (TGIF-Action/Transition, `main_qamc_mlm.py`): all options in one text, the answer is the
  option's index digit at the [MASK].
* "truefalse" (MSRVTT-MC, LSMDC-MC, `main_retmc_mlm.py`): one text per option, "true"/"false" at a
  [MASK] appended after it; the highest-scoring option wins.

`mc_mode: auto` picks "truefalse" for msrvtt-mc/lsmdc-mc and "digit" otherwise. `head: task_specific`
gives the original's baselines (`main_qamc_task_specific.py`: K=size_option classifier;
`main_retmc_task_specific.py`: a scalar score per option).
"""
import torch

from ..metrics import accuracy
from .base import Task, true_false_scores

TRUEFALSE_TASKS = ("msrvtt-mc", "lsmdc-mc")


class MultipleChoice(Task):
    main_metric = "ac"

    def __init__(self, cfg, tokenizer, build_data=True):
        mode = cfg.get("mc_mode", "auto")
        if mode == "auto":
            mode = "truefalse" if cfg.task in TRUEFALSE_TASKS else "digit"
        if mode not in ("digit", "truefalse"):
            raise ValueError(f"mc_mode must be auto, digit or truefalse, got {mode!r}")
        self.mode, self.ts = mode, cfg.head == "task_specific"
        self.pretext_name = "mc" if mode == "digit" else "retmc"
        super().__init__(cfg, tokenizer, build_data)

    @property
    def head_size(self):
        if not self.ts:
            return None
        return self.cfg.size_option if self.mode == "digit" else 1

    def options(self, item):
        return [str(item.get(f"option_{i}", "")) for i in range(self.cfg.size_option)]

    def encode(self, item, train, rng):
        S, ids, O = self.cfg.size_txt, self.ids, self.cfg.size_option
        q, opts = item.get("question", ""), self.options(item)
        label = torch.tensor(int(item.get("answer", -1)))
        if self.mode == "digit":
            text = q + "".join(f" [SEP] option {i}: {o}" for i, o in enumerate(opts))
            if self.ts:
                txt = torch.tensor(self.encode_base(text, S))
                return {"txt": txt, "mask": (txt != ids["pad"]).long(), "label": label}
            t = self.tokens(text)[: S - 1]
            txt = [ids["cls"]] + t + [ids["mask"], ids["sep"]]
            txt = torch.tensor(txt + [ids["pad"]] * (S + 3 - len(txt)))
            return {"txt": txt, "mask": (txt != ids["pad"]).long(), "label": label}
        # truefalse: one text per option; MLM appends a [MASK] after the padding (SPEC §5.1)
        texts = [f"{q} {o}" if q else o for o in opts]
        txt = torch.tensor([self.encode_base(t, S) for t in texts])  # [O, S]
        if not self.ts:
            txt = torch.cat([txt, torch.full((O, 1), ids["mask"])], 1)
        mask = (txt != ids["pad"]).long()
        return {"txt": txt, "mask": mask, "label": label}

    # ------------------------------------------------------------------ scoring
    def _option_scores(self, model, batch):
        """[B, O] scores (higher = more likely the answer) and the training loss inputs."""
        img, txt, mask, label = batch["img"], batch["txt"], batch["mask"], batch["label"]
        if self.mode == "digit":
            hidden = self.fused(model, img, txt, mask)
            if self.ts:
                logits = model.head(hidden)
                return logits, logits, label
            pos = (txt == self.ids["mask"]).float().argmax(1)
            logits = model.mlm(hidden[torch.arange(len(pos), device=pos.device), pos])
            digits = torch.tensor([self.ids[str(i)] for i in range(self.cfg.size_option)], device=logits.device)
            dl = logits[:, digits].float()
            scores = dl / dl.sum(-1, keepdim=True) if self.cfg.retrieval_score == "ratio" else dl
            target = torch.where(label >= 0, digits[label.clamp(min=0)], torch.full_like(label, -1))
            return scores, logits, target
        B, O, L = txt.shape
        feat, fmask = model.encode_video(img)
        feat = feat.repeat_interleave(O, 0)
        fmask = fmask.repeat_interleave(O, 0)
        hidden = self.fused(model, None, txt.view(B * O, L), mask.view(B * O, L), feat, fmask)
        if self.ts:
            logits = model.head(hidden).view(B, O)
            return logits, logits, label
        logits = model.mlm(hidden[:, -1])                                  # [B*O, V] at the [MASK]
        tf = logits[:, [self.ids["true"], self.ids["false"]]].view(B, O, 2)
        is_true = torch.arange(O, device=label.device)[None] == label[:, None]
        target = torch.where(is_true, self.ids["true"], self.ids["false"]).view(-1)
        return true_false_scores(tf, self.cfg.retrieval_score), logits, target

    def train_step(self, model, batch):
        scores, logits, target = self._option_scores(model, batch)
        valid = target >= 0
        loss = self.ce(logits[valid], target[valid])
        return loss, {"ac": (scores.argmax(-1) == batch["label"]).float().mean()}

    def eval_step(self, model, batch):
        scores, _, _ = self._option_scores(model, batch)
        return {"index": batch["index"], "label": batch["label"], "pred": scores.argmax(-1),
                "scores": scores.float()}

    def summarize(self, records, split):
        return {"ac": accuracy(records["pred"] == records["label"]), "n": int(len(records["label"]))}

    def predictions(self, records, split):
        items = self.datasets[split].items
        return [{"video": items[int(i)]["video"], "question": items[int(i)].get("question", ""),
                 "answer": int(lab), "prediction": int(p), "scores": [round(float(x), 5) for x in s]}
                for i, lab, p, s in zip(records["index"], records["label"], records["pred"], records["scores"])]
