"""`_tools/benchmark.py original`: this code's step and the original's, in processes of their own, on the same
batch. The original here is a stand-in checkout with the original's entry points (tiny model, CPU)."""
import json
import os
import shlex

import pytest

from lavender.paths import REPO_ROOT
from tiny import tiny_overrides
from tool_loader import load_tool

QA = os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json")

# What the harness uses of a checkout of microsoft/LAVENDER: utils.args.get_args (reads sys.argv),
# main_qaoe_mlm's model and agent classes; it also imports packages the harness stubs, calls `.cuda()`,
# `inspect.getargspec` and transformers' from_pretrained, as the original does.
FAKE_ARGS = """
import json, sys, types

def get_args():
    argv = sys.argv[1:]
    args = types.SimpleNamespace(**json.load(open(argv[argv.index("--config") + 1])))
    for k in ("size_img", "size_frame"):
        if f"--{k}" in argv:
            setattr(args, k, int(argv[argv.index(f"--{k}") + 1]))
    return args
"""
FAKE_SCRIPT = """
import inspect, json, os
import torch, transformers
import deepspeed                     # stubbed by the harness
from skimage.feature import hog      # stubbed by the harness
import fakedep                       # from --original_deps

class LAVENDER_QAOE_MLM(torch.nn.Module):
    def __init__(self, args, tokzr=None):
        super().__init__()
        self.args, self.mask_id = args, tokzr.convert_tokens_to_ids(tokzr.mask_token)
        self.hidden = transformers.AutoConfig.from_pretrained(args.fusion_encoder).hidden_size
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, batch):
        return self.lin(batch["img"].mean(dim=(-1, -2))).mean()

class Agent_QAOE_MLM:
    def __init__(self, args, model):
        self.model, self.opt = model, torch.optim.AdamW(model.parameters())

    def prepare_batch(self, batch):
        return {k: v.cuda(non_blocking=True) for k, v in batch.items()}

    def step(self, batch, is_train):
        FAIL
        inspect.getargspec(self.model.forward)
        at_mask = batch["txt"] == self.model.mask_id
        seen = {"img": list(batch["img"].shape), "txt": list(batch["txt"].shape), "cwd": os.getcwd(),
                "answers_at_mask": bool((batch["mask_ans"][at_mask] >= 0).all()
                                        and (batch["mask_ans"][~at_mask] == -1).all() and at_mask.any()),
                "size_vocab": self.model.args.size_vocab, "vis_backbone_init": self.model.args.vis_backbone_init,
                "hidden": self.model.hidden, "dep": fakedep.NAME, "training": self.model.training}
        json.dump(seen, open("seen.json", "w"))
        loss = self.model(batch)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        return {"ls": loss.item()}
"""


def _fake_original(root, fail=False):
    (root / "utils").mkdir(parents=True)
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "args.py").write_text(FAKE_ARGS)
    script = FAKE_SCRIPT.replace("FAIL", "raise RuntimeError('boom in the original')" if fail else "pass")
    (root / "main_qaoe_mlm.py").write_text(script)
    deps = root.parent / "deps"
    deps.mkdir()
    (deps / "fakedep.py").write_text("NAME = 'fakedep'\n")
    return root, deps


def _run(tmp_path, orig, deps, *extra):
    over = shlex.join(tiny_overrides(tmp_path / "data", tmp_path / "out"))
    out = tmp_path / "sbs.json"
    load_tool("benchmark").main(["original", "--original", str(orig), "--original_deps", str(deps), "--config", QA,
                                 "--override", over, "--steps", "2", "--window", "2", "--rounds", "1",
                                 "--json", str(out), *extra])
    return json.loads(out.read_text())


def test_side_by_side_runs_both_sides_on_the_same_batch(tmp_path):
    orig, deps = _fake_original(tmp_path / "LAVENDER")
    res = _run(tmp_path, orig, deps, "--sides", "ours", "original")
    seen = json.loads((orig / "seen.json").read_text())
    # the original got our synthetic batch (tiny overrides: 2 frames of 32 px), its answers at the [MASK]
    assert seen["img"] == [2, 2, 3, 32, 32] and seen["txt"][0] == 2 and seen["answers_at_mask"]
    assert seen["size_vocab"] == -1 and seen["vis_backbone_init"] == "random" and seen["training"]
    assert seen["hidden"] == 768 and seen["dep"] == "fakedep" and seen["cwd"] == str(orig.resolve())
    assert [r["side"] for r in res["runs"]] == ["ours", "original"]
    for r in res["runs"]:
        assert len(r["steps_s"]) == 2 and all(t > 0 for t in r["steps_s"]) and r["max_rss_gb"] > 0
        assert r["steady_s"] == r["steps_s"][1]  # window 2..2
    assert "checkpoint_keep linear" in res["runs"][0]["about"]  # msrvtt-qa's configured step
    assert res["speedup"]["ours"] == pytest.approx(res["steady_s"]["original"] / res["steady_s"]["ours"])


def test_side_by_side_reports_a_failing_original(tmp_path):
    orig, deps = _fake_original(tmp_path / "LAVENDER", fail=True)
    with pytest.raises(SystemExit, match="(?s)the original process failed.*boom in the original"):
        _run(tmp_path, orig, deps, "--sides", "original")


def test_side_by_side_refuses_what_it_cannot_run(tmp_path):
    bench = load_tool("benchmark")
    with pytest.raises(SystemExit, match="--original DIR is needed"):
        bench.main(["original", "--config", QA])
    with pytest.raises(SystemExit, match="no main_qaoe_mlm.py there"):
        bench.main(["original", "--original", str(tmp_path), "--config", QA])
    with pytest.raises(SystemExit, match="--window 9: must lie in 1..--steps"):
        bench.main(["original", "--original", str(tmp_path), "--config", QA, "--window", "9"])
    retrieval = os.path.join(REPO_ROOT, "_args", "args_msrvtt-retrieval.json")
    with pytest.raises(SystemExit, match="type 'retrieval' has no side-by-side"):
        bench.main(["original", "--original", str(tmp_path), "--config", retrieval])
