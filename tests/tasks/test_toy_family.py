"""A new task family is one module: this file registers a toy family and trains it through the engine (and as
a task of a multi-task run), with no edit anywhere else."""
import json
import math
import os

import torch

from lavender.run import run
from lavender.tasks import families, register
from lavender.tasks.base import Task
from tiny import make_color_world, tiny_argv


@register("toy-colour")
class ToyColour(Task):
    """Is the shape red? "true"/"false" at a [MASK] after the question, read from the colour-world QA items."""

    required_fields = ("answer_text",)

    def encode(self, item, train, rng):
        txt = torch.tensor(self.encode_base("is the shape red?", self.cfg.size_txt) + [self.ids["mask"]])
        red = item["answer_text"] == "red"
        return {"txt": txt, "mask": (txt != self.ids["pad"]).long(),
                "label": torch.tensor(self.ids["true"] if red else self.ids["false"])}

    def logits(self, model, batch):
        hidden = self.fused(model, batch["img"], batch["txt"], batch["mask"])
        rows = torch.tensor([self.ids["true"], self.ids["false"]], device=hidden.device)
        return model.mlm(hidden[:, -1], rows=rows)

    def train_step(self, model, batch, step=None):
        target = (batch["label"] == self.ids["false"]).long()  # row 0: true, row 1: false
        logits = self.logits(model, batch)
        return self.ce(logits, target), {"ac": (logits.argmax(-1) == target).float().mean()}

    def eval_step(self, model, batch):
        target = (batch["label"] == self.ids["false"]).long()
        return {"index": batch["index"], "hit": self.logits(model, batch).argmax(-1) == target}

    def summarize(self, records, split):
        return {"ac": float(records["hit"].mean()), "n": int(len(records["hit"]))}


def test_a_family_defined_in_a_test_trains_through_the_engine(tmp_path):
    assert families()["toy-colour"] is ToyColour
    world = make_color_world(str(tmp_path / "w"), n_videos=16, tasks={"tiny-qa": "qa"})
    log = run("toy-colour", tiny_argv(world, tmp_path / "out", "tiny-qa", "toy-colour", size_epoch=2))
    assert log["epoch"] == [1, 2] and all(math.isfinite(x) for x in log["ls_tr"])
    assert all(0.0 <= x <= 1.0 for x in log["ac_vl"] + log["ac_ts"]) and log["n_vl"][0] == 4
    run_dir = next(d for d in os.scandir(tmp_path / "out") if d.name.startswith("_tiny-qa_"))
    assert os.path.isfile(os.path.join(run_dir.path, "ckpt_violet_tiny-qa_best.pt"))


def test_a_family_defined_in_a_test_is_a_multi_task_member(tmp_path):
    world = make_color_world(str(tmp_path / "w"), n_videos=16, tasks={"tiny-qa": "qa", "tiny-retrieval": "retrieval"})
    entries = [{"type": "toy-colour", "task": "tiny-qa"}, {"type": "retrieval", "task": "tiny-retrieval"}]
    argv = tiny_argv(world, tmp_path / "out", "toy+ret", "multi-task", datasets=entries, max_steps=4)
    log = run("multi-task", argv)
    assert {"tiny-qa_ac_vl", "tiny-retrieval_r@1_vl", "mean_vl"} <= set(log)
    run_dir = next(d for d in os.scandir(tmp_path / "out") if d.name.startswith("_toy+ret_"))
    saved = json.load(open(os.path.join(run_dir.path, "args.json")))
    assert saved["datasets"][0]["type"] == "toy-colour"
