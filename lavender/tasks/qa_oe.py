"""Open-ended QA: TGIF-Frame, MSRVTT-QA, MSVD-QA (answer word at a [MASK] after the question) and
LSMDC fill-in-the-blank (the blank is the [MASK]). `QAOpenEndedTS` is the original's
classifier-over-answers baseline (`main_qaoe_task_specific.py`, `head: task_specific`).

Metrics (docs/original.md#open-ended-qa-accuracies), all over every question of the split's json:
  ac_1, ac_5   the original's figures: out-of-vocabulary answers count as wrong; on test, when
               `size_test` is set, scaled by n_json / size_test as the original's "adjusted" accuracy
  ac_1_all     top-1 over every question in the json (multi-token/OOV answers wrong), never scaled
  ac_1_valid   top-1 over only the questions whose answer is one vocabulary token (optimistic)
  n_invalid    questions without a label: multi-token/OOV answers, and FiB blanks cut off by size_txt
"""
import logging

import torch

from ..data.annotations import load_annotation_file
from ..engine.protocol import TARGETS
from ..errors import ConfigError, DataError
from ..metrics import accuracy, topk_hits
from .base import Task
from .registry import register

log = logging.getLogger("lavender")


@register("qaoe")
class QAOpenEnded(Task):
    """LAVENDER: the answer word predicted by the MLM head at the [MASK]."""

    main_metric = "ac_1"
    prompt_name = task_token = "oe"
    reads = Task.reads + ("size_test",)
    required_fields = ("question",)
    field_kinds = {"question": "text", "answer_text": "text", "answer": "label"}
    predicts = "the top answers of a question (a [MASK] in it: fill in the blank), with probabilities"
    invalid_reason = "the answer is not one vocabulary token, or size_txt cuts the blank off"

    @classmethod
    def variant(cls, cfg):
        return QAOpenEndedTS if cfg.head == "task_specific" else cls

    def missing_fields(self, item):
        answer = [] if "answer_text" in item or "answer" in item else ["answer_text (or answer + ans2label)"]
        return super().missing_fields(item) + answer

    def __init__(self, cfg, tokenizer, build_data=True):
        self.fib, self.label2ans = False, None
        super().__init__(cfg, tokenizer, build_data)

    def build_datasets(self):
        super().build_datasets()
        a2l = self.annotations.get("ans2label")
        self.label2ans = {v: k for k, v in a2l.items()} if a2l else None
        self.set_fib(any("[MASK]" in it.get("question", "") for ds in self.datasets.values()
                         for it in ds.items[:50]))
        self.warn_unanswerable()

    def warn_unanswerable(self):
        """At start-up, not after the first evaluation: the share of each split whose answer is not one
        vocabulary token (the MLM head cannot produce it: no label, counted wrong as `n_invalid`)."""
        if self.cfg.head != "mlm":  # the baseline head's answers are its classes
            return
        ids, lines = {}, []
        for split, ds in self.datasets.items():
            words = [self.answer_word(it) for it in ds.items]
            bad = [w for w in words if ids.setdefault(w, self.single_token(w)) < 0]
            if bad:
                lines.append(f"{split} {len(bad)} of {len(words)} ({100 * len(bad) / len(words):.1f}%)")
        if lines:
            worst = sorted({w for w, i in ids.items() if i < 0})[:5]
            log.warning("%s: answers that are not one vocabulary token, which the MLM head cannot produce (no "
                        "label; counted wrong, n_invalid): %s; e.g. %s", self.annotation_path(), ", ".join(lines),
                        worst)

    def set_fib(self, fib):
        """Fill-in-the-blank (the question holds the literal [MASK]) or a question with the answer after it."""
        self.fib = bool(fib)
        self.prompt_name = "fib" if self.fib else "oe"  # its own prompt; the task token stays "oe"

    def answer_word(self, item):
        if "answer_text" in item:
            return str(item["answer_text"])
        ans = item.get("answer")
        if self.label2ans is not None and ans in self.label2ans:
            return self.label2ans[ans]
        return str(ans)

    def count_items(self, split, items):
        """`n_truncated` (questions cut by size_txt) and `n_invalid` (items without a label: the answer is not
        one vocabulary token, or the blank is cut off), as `encode` labels them."""
        S, mask = self.cfg.size_txt, self.ids["mask"]
        keep = S - 2 if self.fib else S - 1  # question tokens kept (encode_base / the layout below)
        label = {}
        n_cut = n_invalid = 0
        for it, ids in zip(items, self.token_ids([it.get("question", "") for it in items])):
            word = self.answer_word(it)
            if word not in label:
                label[word] = self.single_token(word)
            n_cut += len(ids) > keep
            n_invalid += label[word] < 0 or (self.fib and mask not in ids[:keep])
        return {"n_truncated": n_cut, "n_invalid": n_invalid}

    def encode(self, item, train, rng):
        S, ids = self.cfg.size_txt, self.ids
        q = item.get("question", "")
        answer = self.single_token(self.answer_word(item))
        if self.fib:  # the question holds the literal [MASK]: base encode, label every [MASK]
            txt = torch.tensor(self.encode_base(q, S))
        else:  # [CLS] q[:S-1] answer : [MASK] [SEP] [PAD]*(S-n)   (length S+5)
            qt = self.tokens(q)[: S - 1]
            txt = [ids["cls"]] + qt + [ids["answer"], ids[":"], ids["mask"], ids["sep"]]
            txt = torch.tensor(txt + [ids["pad"]] * (S + 5 - len(txt)))
        blank = txt == ids["mask"]
        if not blank.any():  # a FiB blank cut off by size_txt: no label, counted wrong (as the original)
            answer = -1
        labels = torch.where(blank, torch.tensor(answer), torch.tensor(-1))
        return {"txt": txt, "mask": (txt != ids["pad"]).long(), "labels": labels,
                "label": torch.tensor(answer)}

    # ------------------------------------------------------------------ steps
    def logits(self, model, batch):
        """Answer logits [B, classes] and the label per question."""
        hidden = self.fused(model, batch["img"], batch["txt"], batch["mask"])
        # one prediction per question: the first [MASK] position (FiB labels every [MASK] the same)
        pos = (batch["txt"] == self.ids["mask"]).float().argmax(1)
        h = hidden[torch.arange(len(pos), device=pos.device), pos]
        return model.mlm(h), batch["label"]

    def train_step(self, model, batch, step=None):
        if self.fib:  # every [MASK] of the sentence is labelled with the answer
            hidden = self.fused(model, batch["img"], batch["txt"], batch["mask"])
            logits, labels = self.mlm_at(model, hidden, batch["labels"])
        else:  # one [MASK] per question: the logits there, out-of-vocabulary answers (label -1) ignored
            logits, labels = self.logits(model, batch)
        valid = labels >= 0  # none valid (only out-of-vocabulary answers): loss 0, and no update (TARGETS)
        acc = ((logits.argmax(-1) == labels) & valid).sum() / valid.sum().clamp(min=1)
        return self.ce_valid(logits, labels), {"ac": acc, TARGETS: valid.sum()}

    def eval_step(self, model, batch):
        logits, label = self.logits(model, batch)
        top5 = logits.float().topk(5, -1).indices
        return {"index": batch["index"], "label": label, "top5": top5}

    def summarize(self, records, split):
        label, top5 = records["label"], records["top5"]
        hit1 = topk_hits(top5, label, 1)
        hit5 = topk_hits(top5, label, 5)
        n = len(label)
        scale = 1.0
        if split == "test" and self.cfg.size_test and self.cfg.size_test != n:
            scale = n / self.cfg.size_test  # the original's "adjusted" accuracy
        valid = label >= 0
        return {"ac_1": accuracy(hit1) * scale, "ac_5": accuracy(hit5) * scale,
                "ac_1_all": accuracy(hit1), "ac_1_valid": accuracy(hit1[valid]) if valid.any() else 0.0,
                "n": int(n), "n_invalid": int((~valid).sum())}

    def class_name(self, c):
        """Readable answer of class `c` (a vocabulary token here)."""
        return self.tok.convert_ids_to_tokens(c)

    def predict(self, model, batches, question, k=5):
        """Per video the top-`k` (answer, probability) for `question` (a [MASK] in it: fill-in-the-blank)."""
        self.set_fib("[MASK]" in question)
        enc = self.encode({"question": question, "answer_text": ""}, False, None)
        out = []
        for idx, img in batches:
            batch = {k2: v.unsqueeze(0).repeat(len(idx), *[1] * v.dim()).to(img.device) for k2, v in enc.items()}
            logits, _ = self.logits(model, dict(batch, img=img))
            top = logits.float().softmax(-1).topk(min(k, logits.shape[-1]), -1)
            for p, c in zip(top.values.tolist(), top.indices.tolist()):
                out.append([(str(self.class_name(ci)), pi) for ci, pi in zip(c, p)])
        return out

    def reference(self, item):
        return self.answer_word(item)

    def predictions(self, records, split):
        items = self.datasets[split].items
        out = []
        for i, top, lab in zip(records["index"], records["top5"], records["label"]):
            it = items[int(i)]
            out.append({"video": it["video"], "question": it.get("question", ""), "answer": self.reference(it),
                        "prediction": self.class_name(int(top[0])), "correct": bool(top[0] == lab)})
        return out


class QAOpenEndedTS(QAOpenEnded):
    """Baseline: an MLP head over `size_vocab` answer classes on the first text token; items need an
    integer `answer` (class id)."""

    required_fields = ("question", "answer")
    field_kinds = {"question": "text", "answer": "index"}
    invalid_reason = "no class"
    reads = QAOpenEnded.reads + ("size_vocab",)

    def missing_fields(self, item):
        return Task.missing_fields(self, item)

    def item_problem(self, item):
        if self.cfg.size_vocab > 0 and isinstance(item.get("answer"), int) and item["answer"] >= self.cfg.size_vocab:
            return f"answer {item['answer']} is not a class of size_vocab {self.cfg.size_vocab}"
        return super().item_problem(item)

    def count_items(self, split, items):
        ids = self.token_ids([it.get("question", "") for it in items])
        return {"n_truncated": sum(len(t) > self.cfg.size_txt - 2 for t in ids)}

    def heads(self):
        return {self.head_name: self.cfg.size_vocab}

    def build_datasets(self):
        if self.cfg.size_vocab <= 0:
            raise ConfigError(f"{self.cfg.config}: head task_specific needs size_vocab > 0 (number of answer classes)")
        super().build_datasets()

    def encode(self, item, train, rng):
        txt = torch.tensor(self.encode_base(item.get("question", ""), self.cfg.size_txt))
        label = item["answer"] if isinstance(item.get("answer"), int) else -1
        return {"txt": txt, "mask": (txt != self.ids["pad"]).long(), "label": torch.tensor(label)}

    def logits(self, model, batch):
        hidden = self.fused(model, batch["img"], batch["txt"], batch["mask"])
        return model.head(hidden, self.head_name), batch["label"]

    def train_step(self, model, batch, step=None):
        logits, label = self.logits(model, batch)
        return self.ce_valid(logits, label), {"ac": (logits.argmax(-1) == label).float().mean()}

    def class_name(self, c):
        return self.label2ans.get(c, c) if self.label2ans else c

    def predict(self, model, batches, question, k=5):
        if self.label2ans is None:  # class id -> answer, from the run's annotation file when it is there
            try:
                a2l = load_annotation_file(self.annotation_path()).get("ans2label")
            except DataError:
                a2l = None
            self.label2ans = {v: k2 for k2, v in a2l.items()} if isinstance(a2l, dict) else None
        return super().predict(model, batches, question, k)

    def reference(self, item):
        return item.get("answer")
