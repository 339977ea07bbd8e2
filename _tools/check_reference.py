"""Check the model against a reference file made by the original LAVENDER code.

    python _tools/check_reference.py --ref tests/data/ref_A.pt [--f64]

The model is rebuilt from the file's ``config`` alone, its ``state_dict`` is loaded strictly, the
recorded ``inputs`` are run, and the max absolute difference to every recorded output is printed.
Exit status 1 when any difference exceeds the tolerance (1e-5 in float32) or an output cannot be
computed. ``--f64`` also runs the model in float64 against ``outputs_f64`` (tolerance 1e-9).
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lavender.run import main_guard  # noqa: E402
from lavender.models.weights import load_state_dict_into, load_torch_file  # noqa: E402
from lavender.models.lavender import Lavender, ModelConfig  # noqa: E402
from lavender.models.factory import bert_settings  # noqa: E402
from lavender.models.video_swin import SwinConfig  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float64: 1e-9}


def build_from_config(cfg):
    """A Lavender model with the shapes recorded in a reference ``config``."""
    sw = cfg["swin"]
    swin = SwinConfig(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in sw.items()
                         if k in SwinConfig.__dataclass_fields__})
    mc = ModelConfig(swin=swin, bert=bert_settings(None, None, cfg["bert"]),
                     max_size_frame=cfg["max_size_frame"], max_size_patch=cfg["max_size_patch"],
                     n_task_tokens=cfg.get("n_task_tokens", 10))
    model = Lavender(mc)
    if cfg.get("task_tok2id"):
        model.task_tok2id = dict(cfg["task_tok2id"])
    return model


def _with_pretext(ans, n):
    return ans if n == 0 else torch.cat([ans.new_full((ans.shape[0], n), -1), ans], 1)


def compute_outputs(model, inputs, tok, dtype=torch.float32):
    """Every output of the reference layout, from the model's public methods."""
    out = {}
    model = model.to(dtype).eval()
    img = inputs["img"].to(dtype)
    swin = model.enc_img.swin
    hooks = [swin.patch_embed.register_forward_hook(lambda m, i, o: out.__setitem__("swin_patch_embed", o))]
    for n, layer in enumerate(swin.layers):
        hooks.append(layer.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(f"swin_layer{n}", o)))
    # Attention probabilities, recomputed from each fusion layer's input (sdpa does not return them).
    layer_in = []
    for layer in model.trsfr.layer:
        hooks.append(layer.register_forward_pre_hook(lambda m, a: layer_in.append(a[0])))
    B = img.shape[0]
    MASK, TRUE, FALSE = tok["[MASK]"], tok["true"], tok["false"]
    try:
        with torch.no_grad():
            feat_img, mask_img = model.encode_video(img)
            out["swin_out"] = model.enc_img.swin(img.transpose(1, 2))
            Lv = feat_img.shape[1]
            out["feat_img"], out["mask_img"] = feat_img, mask_img
            txt, mask, ans = inputs["txt_qa"], inputs["mask_qa"], inputs["mask_ans_qa"]
            feat_txt = model.embed_text(txt)
            out["feat_txt_qa"] = feat_txt
            fused = model.fuse(feat_img, mask_img, feat_txt, mask, return_all=True)
            out["fused_hidden_qa"] = fused
            ext = model.attention_mask(mask_img, mask, "full", dtype)
            out["fused_attentions_qa"] = torch.stack([
                _attn_probs(layer.attention.self, h, ext) for layer, h in zip(model.trsfr.layer, layer_in)])
            for hk in hooks:
                hk.remove()
            prompt = (inputs["prompt_txt"], inputs["prompt_mask"])
            variants = {"": {}, "_task": {"task_token": "oe"},
                        "_prompt": {"prompt_ids": prompt[0], "prompt_mask": prompt[1]}}
            # (a) open-ended QA
            for name, kw in variants.items():
                pre = model.pretext(B, **kw)
                n_pre = 0 if pre is None else pre[0].shape[1]
                logits = model.mlm(model.fuse(feat_img, mask_img, feat_txt, mask, pretext=pre))
                out[f"qa{name}_logits"] = logits
                out[f"qa{name}_ans"] = _with_pretext(ans, n_pre)
                out[f"qa{name}_mask_logits"] = logits[:, n_pre:][txt == MASK]
            out["qa_mask_top5"] = out["qa_mask_logits"].topk(5, dim=-1).indices
            # (b) retrieval: every (video i, text j) pair, p = i*B + j
            txt, mask, vid = inputs["txt_ret"], inputs["mask_ret"], inputs["vid"]
            vi = torch.arange(B).repeat_interleave(B)
            tj = torch.arange(B).repeat(B)
            gt = torch.tensor([[int(vid[i] == vid[j]) for j in range(B)] for i in range(B)])
            feat_txt = model.embed_text(txt)
            variants["_task"] = {"task_token": "vtm"}
            for name, kw in variants.items():
                pre = model.pretext(B * B, **kw)
                n_pre = 0 if pre is None else pre[0].shape[1]
                hidden = model.fuse(feat_img[vi], mask_img[vi], feat_txt[tj], mask[tj], pretext=pre, return_all=True)
                if name == "":
                    out["ret_fused_hidden"] = hidden
                logits = model.mlm(hidden[:, Lv:])
                a = torch.full(logits.shape[:2], -1, dtype=torch.long)
                a[:, -1] = torch.where(gt.flatten().bool(), TRUE, FALSE)
                out[f"ret{name}_logits"], out[f"ret{name}_ans"] = logits, a
                tf = logits[:, -1][:, [TRUE, FALSE]]
                if name == "":
                    out["ret_mask_logits"], out["ret_mask_true_false_logits"] = logits[:, -1], tf
                scores = (tf[:, 0] / (tf[:, 0] + tf[:, 1])).view(B, B)  # the original's raw-logit ratio
                out[f"ret{name}_scores"] = scores
            out["ret_argmax"] = out["ret_scores"].argmax(1)
            out["ret_gt_matrix"] = gt
    finally:
        for hk in hooks:
            hk.remove()
    return out


def _attn_probs(attn, hidden, ext):
    B, L, _ = hidden.shape
    heads, d = attn.num_attention_heads, attn.attention_head_size
    q = attn.query(hidden).view(B, L, heads, d).transpose(1, 2)
    k = attn.key(hidden).view(B, L, heads, d).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + ext, dim=-1)


def compare(got, want, tol):
    """{name: (max abs diff or None when not computable, passed)}."""
    res = {}
    for name, ref in want.items():
        if not torch.is_tensor(ref):
            continue
        val = got.get(name)
        if val is None or tuple(val.shape) != tuple(ref.shape):
            res[name] = (None, False)
            continue
        diff = (val.detach().double() - ref.double()).abs().max().item() if ref.numel() else 0.0
        res[name] = (diff, diff <= tol)
    return res


def run_check(ref_path, f64=False, log=print, state_dict=None):
    """Run the whole check; returns (all passed, {label: {name: (diff, passed)}})."""
    ref = load_torch_file(ref_path)
    torch.manual_seed(0)
    model = build_from_config(ref["config"])
    load_state_dict_into(model, state_dict if state_dict is not None else ref["state_dict"], strict=True,
                         log=None, source=ref_path)
    tok = ref["config"]["token_ids"]
    results = {"float32": compare(compute_outputs(model, ref["inputs"], tok), ref["outputs"], TOL[torch.float32])}
    if f64 and ref.get("outputs_f64"):
        results["float64"] = compare(compute_outputs(model, ref["inputs"], tok, torch.float64),
                                     ref["outputs_f64"], TOL[torch.float64])
    ok = True
    for label, res in results.items():
        log(f"{label}: {'output':<28} max|diff|")
        for name, (diff, passed) in res.items():
            ok &= passed
            shown = "NOT COMPUTED" if diff is None else f"{diff:.3e}"
            log(f"  {name:<34} {shown:>12}  {'ok' if passed else 'FAIL'}")
    log(f"reference check {'PASSED' if ok else 'FAILED'} ({os.path.basename(ref_path)})")
    return ok, results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="reference file (config, state_dict, inputs, outputs)")
    ap.add_argument("--f64", action="store_true", help="also compare a float64 run with outputs_f64")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    ok, _ = run_check(args.ref, args.f64)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main_guard(main))
