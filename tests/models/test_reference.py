"""Numerical equivalence with the original LAVENDER code (tests/data/ref_A.pt, see REFDATA)."""
import os
import subprocess
import sys

import torch
from tool_loader import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, "tests", "data", "ref_A.pt")
TOOL = os.path.join(ROOT, "_tools", "check_reference.py")


def test_reference_in_process():
    lines = []
    ok, results = load_tool("check_reference").run_check(REF, log=lines.append)
    assert ok, "\n".join(lines)
    ref = torch.load(REF, weights_only=True)
    want = {k for k, v in ref["outputs"].items() if torch.is_tensor(v)}
    assert set(results["float32"]) == want  # every recorded output was computed and compared
    assert all(d is not None and d <= 1e-5 for d, _ in results["float32"].values())


def test_reference_tool_subprocess():
    proc = subprocess.run([sys.executable, TOOL, "--ref", REF], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout and "fused_attentions_qa" in proc.stdout


def test_perturbed_weights_fail(tmp_path):
    tool = load_tool("check_reference")
    ref = torch.load(REF, weights_only=True)
    sd = dict(ref["state_dict"])
    key = "trsfr.layer.0.output.dense.weight"
    # A random (not uniform: LayerNorm would cancel a constant shift) perturbation of one weight.
    sd[key] = sd[key] + 1e-3 * torch.randn(sd[key].shape, generator=torch.Generator().manual_seed(0))
    ok, results = tool.run_check(REF, log=lambda *_: None, state_dict=sd)
    assert not ok
    assert results["float32"]["feat_img"][1] and not results["float32"]["fused_hidden_qa"][1]
    # The command line exits non-zero on the same perturbation.
    ref["state_dict"] = sd
    bad = tmp_path / "ref_bad.pt"
    torch.save(ref, bad)
    assert tool.main(["--ref", str(bad)]) == 1
