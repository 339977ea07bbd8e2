"""Multiple-choice QA, in the original's two MLM phrasings (docs/original.md#multiple-choice-option-index,
docs/original.md#multiple-choice-truefalse-per-option), each with its baseline:

* `MCDigit` (TGIF-Action/Transition, `main_qamc_mlm.py`): all options in one text, the answer is the
  option's index digit at the [MASK]. Baseline `MCDigitTS`: a `size_option`-way head
  (`main_qamc_task_specific.py`).
* `MCTrueFalse` (MSRVTT-MC, LSMDC-MC, `main_retmc_mlm.py`): one text per option, "true"/"false" at a
  [MASK] appended after it; the highest-scoring option wins. Baseline `MCTrueFalseTS`: a scalar score
  per option (`main_retmc_task_specific.py`).

`mc_mode: auto` picks the true/false phrasing for msrvtt-mc/lsmdc-mc and the digit one otherwise.
"""
import torch

from ..errors import ConfigError
from ..metrics import accuracy
from .base import Task
from .items import field_problem
from .modeling import true_false_scores
from .registry import register

TRUEFALSE_TASKS = ("msrvtt-mc", "lsmdc-mc")


def mc_mode(cfg):
    """"digit" or "truefalse" for a config (`mc_mode`, or from the task name when "auto")."""
    mode = cfg.mc_mode
    if mode == "auto":
        mode = "truefalse" if cfg.task in TRUEFALSE_TASKS else "digit"
    if mode not in ("digit", "truefalse"):
        raise ConfigError(f"mc_mode must be auto, digit or truefalse, got {mode!r}")
    return mode


@register("qamc")
class MultipleChoice(Task):
    """What both phrasings share: options, loss over `option_scores`, accuracy and predictions."""

    main_metric = "ac"
    predicts = "one number per option of a question, higher = more likely"
    field_kinds = {"question": "text_or_empty", "answer": "index"}
    reads = Task.reads + ("size_option",)

    @classmethod
    def variant(cls, cfg):
        ts = cfg.head == "task_specific"
        if mc_mode(cfg) == "digit":
            return MCDigitTS if ts else MCDigit
        return MCTrueFalseTS if ts else MCTrueFalse

    def missing_fields(self, item):
        return [f for f in ["answer"] + [f"option_{i}" for i in range(self.cfg.size_option)] if f not in item]

    def item_problem(self, item):
        options = (field_problem(item, f"option_{i}", "text") for i in range(self.cfg.size_option))
        problem = super().item_problem(item) or next((p for p in options if p), None)
        if problem is None and item["answer"] >= self.cfg.size_option:
            problem = f"answer {item['answer']} is not an option index (size_option {self.cfg.size_option})"
        return problem

    def options(self, item):
        return [str(item.get(f"option_{i}", "")) for i in range(self.cfg.size_option)]

    def pack(self, txt, item):
        """The encoded example: text ids, their mask and the answer index."""
        return {"txt": txt, "mask": (txt != self.ids["pad"]).long(), "label": torch.tensor(int(item.get("answer", -1)))}

    def option_scores(self, model, batch):
        """([B, O] scores, higher = more likely the answer; logits and targets of the training loss)."""
        raise NotImplementedError

    def train_step(self, model, batch, step=None):
        scores, logits, target = self.option_scores(model, batch)
        return self.ce_valid(logits, target), {"ac": (scores.argmax(-1) == batch["label"]).float().mean()}

    def eval_step(self, model, batch):
        scores, _, _ = self.option_scores(model, batch)
        return {"index": batch["index"], "label": batch["label"], "pred": scores.argmax(-1),
                "scores": scores.float()}

    def summarize(self, records, split):
        return {"ac": accuracy(records["pred"] == records["label"]), "n": int(len(records["label"]))}

    def option_probabilities(self, scores):
        """Per-option numbers to compare, from `option_scores` (true/false: P(true) of each option)."""
        return scores

    def predict(self, model, batches, question, options):
        """Per video one number per option (`option_probabilities`)."""
        if len(options) < 2:
            raise ConfigError("give at least two --options")
        item = {"question": question, "answer": -1, **{f"option_{i}": o for i, o in enumerate(options)}}
        enc = self.encode(item, False, None)
        out = []
        for idx, img in batches:
            batch = {k: v.unsqueeze(0).repeat(len(idx), *[1] * v.dim()).to(img.device) for k, v in enc.items()}
            scores, _, _ = self.option_scores(model, dict(batch, img=img))
            out.extend(self.option_probabilities(scores.float()).tolist())
        return out

    def predictions(self, records, split):
        items = self.datasets[split].items
        return [{"video": items[int(i)]["video"], "question": items[int(i)].get("question", ""),
                 "answer": int(lab), "prediction": int(p), "scores": [round(float(x), 5) for x in s]}
                for i, lab, p, s in zip(records["index"], records["label"], records["pred"], records["scores"])]


class MCDigit(MultipleChoice):
    """`[CLS] q [SEP] option 0: o0 ... [MASK] [SEP]`: the answer's index digit at the [MASK]; `mask_pos`
    puts the [MASK] elsewhere (docs/original.md#text-layouts)."""

    prompt_name = task_token = "mc"
    reads = MultipleChoice.reads + ("mask_pos",)

    def text(self, item):
        return item.get("question", "") + "".join(f" [SEP] option {i}: {o}" for i, o in enumerate(self.options(item)))

    def texts_to_fit(self, item):
        return [(self.text(item), self.cfg.size_txt - 1)]

    def encode(self, item, train, rng):
        S, ids = self.cfg.size_txt, self.ids
        t = self.tokens(self.text(item))[: S - 1]
        cls, sep, mask, pad = ids["cls"], ids["sep"], ids["mask"], [ids["pad"]] * (S - len(t))
        where = self.cfg.mask_pos
        if where == "append":       # [CLS] t [MASK] [SEP] pad   (S+3)
            txt = [cls] + t + [mask, sep] + pad
        elif where == "prepend":    # [MASK] [CLS] t [SEP] pad   (S+3)
            txt = [mask, cls] + t + [sep] + pad
        elif where == "replace":    # [MASK] t [SEP] pad         (S+2: the [MASK] replaces [CLS])
            txt = [mask] + t + [sep] + pad
        else:                       # insert: at index 10 of [CLS] t [SEP] pad (appended if shorter; S+3)
            txt = [cls] + t + [sep] + pad
            txt = txt[:10] + [mask] + txt[10:] if len(txt) >= 10 else txt + [mask]
        return self.pack(torch.tensor(txt), item)

    def option_probabilities(self, scores):
        """Softmax over the options (`retrieval_score` ratio: the original's ratios as they are)."""
        return scores if self.cfg.retrieval_score == "ratio" else scores.softmax(-1)

    def predict(self, model, batches, question, options):
        if len(options) > 10:
            raise ConfigError("the option-index phrasing names options by one digit: at most 10 options")
        return super().predict(model, batches, question, options)

    def option_scores(self, model, batch):
        txt, label = batch["txt"], batch["label"]
        hidden = self.fused(model, batch["img"], txt, batch["mask"])
        pos = (txt == self.ids["mask"]).float().argmax(1)
        logits = model.mlm(hidden[torch.arange(len(pos), device=pos.device), pos])
        digits = torch.tensor([self.ids[str(i)] for i in range(self.cfg.size_option)], device=logits.device)
        dl = logits[:, digits].float()
        scores = dl / dl.sum(-1, keepdim=True) if self.cfg.retrieval_score == "ratio" else dl
        target = torch.where(label >= 0, digits[label.clamp(min=0)], torch.full_like(label, -1))
        return scores, logits, target


class MCDigitTS(MCDigit):
    """Baseline: a `size_option`-way MLP head on the first text token of the base-encoded text."""

    reads = MultipleChoice.reads

    def heads(self):
        return {self.head_name: self.cfg.size_option}

    def texts_to_fit(self, item):
        return [(self.text(item), self.cfg.size_txt - 2)]

    def option_probabilities(self, scores):
        return scores.softmax(-1)

    def encode(self, item, train, rng):
        return self.pack(torch.tensor(self.encode_base(self.text(item), self.cfg.size_txt)), item)

    def option_scores(self, model, batch):
        logits = model.head(self.fused(model, batch["img"], batch["txt"], batch["mask"]), self.head_name)
        return logits, logits, batch["label"]


class MCTrueFalse(MultipleChoice):
    """One text `q option_i` per option with a [MASK] after the padding: "true" for the answer."""

    prompt_name = "retmc"     # the task token is "vtm", as the original
    pair_head = True

    def texts(self, item):
        q = item.get("question", "")
        return [f"{q} {o}" if q else o for o in self.options(item)]

    def texts_to_fit(self, item):
        return [(t, self.cfg.size_txt - 2) for t in self.texts(item)]

    def encode(self, item, train, rng):
        txt = torch.tensor([self.encode_base(t, self.cfg.size_txt) for t in self.texts(item)])  # [O, S]
        return self.pack(torch.cat([txt, torch.full((len(txt), 1), self.ids["mask"])], 1), item)

    def option_hidden(self, model, batch):
        """Fused text-part states of every (video, option text) pair: [B*O, L, H]."""
        txt, mask = batch["txt"], batch["mask"]
        B, O, L = txt.shape
        feat, fmask = model.encode_video(batch["img"])  # each video once, then repeated per option
        return self.fused(model, None, txt.view(B * O, L), mask.view(B * O, L),
                          feat.repeat_interleave(O, 0), fmask.repeat_interleave(O, 0))

    def option_scores(self, model, batch):
        label = batch["label"]
        B, O, _ = batch["txt"].shape
        logits = model.mlm(self.option_hidden(model, batch)[:, -1])        # [B*O, V] at the [MASK]
        tf = logits[:, [self.ids["true"], self.ids["false"]]].view(B, O, 2)
        is_true = torch.arange(O, device=label.device)[None] == label[:, None]
        target = torch.where(is_true, self.ids["true"], self.ids["false"]).view(-1)
        return true_false_scores(tf, self.cfg.retrieval_score), logits, target


class MCTrueFalseTS(MCTrueFalse):
    """Baseline: a scalar MLP head per (video, option) pair, cross-entropy over the options."""

    def heads(self):
        return {self.head_name: 1}

    def option_probabilities(self, scores):
        return scores.sigmoid()

    def encode(self, item, train, rng):
        return self.pack(torch.tensor([self.encode_base(t, self.cfg.size_txt) for t in self.texts(item)]), item)

    def option_scores(self, model, batch):
        B, O, _ = batch["txt"].shape
        logits = model.head(self.option_hidden(model, batch), self.head_name).view(B, O)
        return logits, logits, batch["label"]

