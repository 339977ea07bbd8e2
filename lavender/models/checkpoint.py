"""One weight loader for every checkpoint layout LAVENDER meets, with one clear report.

Layouts (detected automatically):
* ``lavender``   - original LAVENDER/VIOLET ``ckpt_violet_*.pt`` (flat state_dict, maybe ``module.``-prefixed,
  maybe wrapped as ``{"model": sd}`` / ``{"state_dict": sd}``) and our own training checkpoints;
* ``video_swin`` - Video Swin Kinetics checkpoints (``state_dict`` with ``backbone.*`` + ``cls_head.*``), also
  bare Swin keys and 2D ImageNet Swin weights (inflated in time);
* ``hf_bert``    - a Hugging Face BERT folder (config.json + model.safetensors / pytorch_model.bin) or its
  state_dict (BertForMaskedLM / BertForPreTraining / BertModel keys);
* ``swinbert``   - SwinBERT captioning checkpoints (``swin.backbone.*``, ``trans_encoder.bert.*``, ...), renamed
  as the original's ``load_SwinBERT_weight`` (SPEC §2.11); they fill a ``swinbert: true`` model.

``strict`` checks only the part of the model the layout covers (a Kinetics file cannot fill BERT).
"""
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

LAYOUT_SCOPE = {
    "lavender": ("",),
    "video_swin": ("enc_img.swin.",),
    "hf_bert": ("enc_txt.", "trsfr.", "fc_mtm."),
    "swinbert": ("enc_img.", "enc_txt.", "trsfr.", "fc_mtm."),
}
# Keys that are the same tensor in the model: filling one fills the other.
ALIASES = (("fc_mtm.predictions.bias", "fc_mtm.predictions.decoder.bias"),)
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class LoadReport:
    """What a load did. ``ok``: nothing missing (within the layout's scope), unexpected or mismatched."""
    source: str
    layout: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, model shape)
    ignored: list = field(default_factory=list)
    adapted: list = field(default_factory=list)     # human-readable notes on resized/filled tensors
    out_of_scope: int = 0

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        scope = ", ".join(p or "<all>" for p in LAYOUT_SCOPE.get(self.layout, ("",)))
        lines = [f"[load_weights] {self.source}", f"  layout: {self.layout} (covers {scope})",
                 f"  loaded: {len(self.loaded)} tensors"]
        if self.out_of_scope:
            lines.append(f"  not covered by this layout (left as they are): {self.out_of_scope} tensors")

        def block(title, items):
            if items:
                lines.append(f"  {title}: {len(items)}")
                lines.extend(f"    {x}" for x in items)
        block("adapted", self.adapted)
        block("MISSING (model keys not in the file)", self.missing)
        block("UNEXPECTED (file keys the model does not have)", self.unexpected)
        block("SHAPE MISMATCHED (skipped; file vs model)",
              [f"{k}: {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched])
        if self.ignored:
            shown = self.ignored[:6] + ([f"... ({len(self.ignored) - 6} more)"] if len(self.ignored) > 6 else [])
            lines.append(f"  ignored (expected, harmless): {len(self.ignored)}: " + ", ".join(shown))
        lines.append("  result: " + ("OK" if self.ok else "INCOMPLETE"))
        return "\n".join(lines)


def _missing_file_error(path):
    name = os.path.basename(os.path.normpath(path)) or str(path)
    low = name.lower()
    if "swin" in low:
        hint = (f"put the Video Swin checkpoint at {os.path.join('_models', 'video_swin_transformer', name)} "
                "(e.g. swin_base_patch244_window877_kinetics600_22k.pth from the Video Swin Transformer release)")
    elif "bert" in low or "minilm" in low or not os.path.splitext(low)[1]:
        hint = (f"put the Hugging Face model folder at {os.path.join('_models', name)}/ "
                "(config.json + model.safetensors or pytorch_model.bin, e.g. _models/bert-base-uncased/)")
    else:
        hint = "check --path_ckpt: it must name an existing LAVENDER checkpoint (e.g. a ckpt_violet_*.pt file)"
    return FileNotFoundError(f"weights not found: {path}\n  {hint}")


def read_state_dict(path):
    """(state_dict, hint) from a file or a Hugging Face folder; hint is "hf_bert" for folders, else None."""
    path = os.fspath(path)
    hint = None
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in HF_WEIGHT_FILES if os.path.isfile(os.path.join(path, f))]
        if not files:
            raise FileNotFoundError(f"{path} is a folder without {' or '.join(HF_WEIGHT_FILES)}: put the Hugging Face "
                                    "weights (and config.json) there, e.g. _models/bert-base-uncased/")
        path, hint = files[0], "hf_bert"
    elif not os.path.isfile(path):
        raise _missing_file_error(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path, device="cpu"), hint
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as err:
        warnings.warn(f"{path}: not loadable with weights_only=True ({str(err).splitlines()[0]}); "
                      "falling back to full unpickling - only do this with files you trust")
        obj = torch.load(path, map_location="cpu", weights_only=False)
    return unwrap(obj), hint


def unwrap(obj):
    """Find the state_dict inside a checkpoint object and drop DDP/DeepSpeed ``module.`` prefixes."""
    while isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = next((obj[k] for k in ("model", "state_dict", "module", "model_state_dict") if k in obj), None)
        if not isinstance(inner, dict):
            raise ValueError(f"no state_dict found in checkpoint with keys {sorted(obj)[:10]}")
        obj = inner
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    while sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def detect_layout(keys):
    keys = list(keys)
    if any(k.startswith(("trans_encoder.", "swin.backbone.")) for k in keys):
        return "swinbert"
    if any(k.startswith(("backbone.", "cls_head.")) for k in keys) or (
            any(k.startswith(("patch_embed.", "layers.")) for k in keys)
            and not any(k.startswith("enc_img.") for k in keys)):
        return "video_swin"
    if any(k.startswith(("bert.", "cls.predictions.", "cls.seq_relationship.", "embeddings.word_embeddings",
                         "encoder.layer.")) for k in keys):
        return "hf_bert"
    return "lavender"


def _map_video_swin(sd, model_keys):
    out, ignored = {}, []
    for k, v in sd.items():
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        # Classifier heads of Kinetics/ImageNet checkpoints and 2D Swin's cached masks are not ours.
        if k.startswith(("cls_head.", "head.")) or k.endswith(".attn_mask"):
            ignored.append(k)
        else:
            out["enc_img.swin." + k] = v
    return out, ignored


def _map_hf_bert(sd, model_keys):
    out, ignored = {}, []
    has_head = any(k.startswith("fc_mtm.") for k in model_keys)
    for k, v in sd.items():
        k2 = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", k))  # pre-2019 LayerNorm names
        base = k2[len("bert."):] if k2.startswith("bert.") else k2
        if base.endswith(("position_ids", "token_type_ids")) or base.startswith(("pooler.", "cls.seq_relationship.")):
            ignored.append(k)
        elif base.startswith("embeddings."):
            out["enc_txt.emb_txt." + base[len("embeddings."):]] = v
        elif base.startswith("encoder."):
            out["trsfr." + base[len("encoder."):]] = v
        elif base.startswith("cls.predictions."):
            if has_head:
                out["fc_mtm.predictions." + base[len("cls.predictions."):]] = v
            else:
                ignored.append(k)
        else:
            out[k] = v  # reported as unexpected
    dec, word = "fc_mtm.predictions.decoder.weight", "enc_txt.emb_txt.word_embeddings.weight"
    notes = []
    if has_head and any(k.startswith("fc_mtm.") for k in out) and dec not in out and word in out:
        # BertForMaskedLM saves its tied decoder only once, as the word embeddings.
        out[dec] = out[word].clone()
        notes.append(f"{dec} <- word embeddings (tied in the file)")
    return out, ignored, notes


# load_SwinBERT_weight's renames (prefix -> prefix); every other key of a SwinBERT checkpoint is dropped.
SWINBERT_RENAMES = (("swin.backbone.", "enc_img.swin."), ("trans_encoder.bert.encoder.", "trsfr."),
                    ("trans_encoder.bert.embeddings.", "enc_txt.emb_txt."), ("fc.", "enc_img.fc."),
                    ("trans_encoder.bert.img_embedding.", "enc_img.img_embedding."),
                    ("trans_encoder.cls.", "fc_mtm."))


def _map_swinbert(sd, model_keys):
    out, ignored, counts = {}, [], {}
    for k, v in sd.items():
        rule = next(((a, b) for a, b in SWINBERT_RENAMES if k.startswith(a)), None)
        if rule is None:
            ignored.append(k)  # e.g. learn_vid_att, the pooler, Swin's Kinetics head (the original drops them)
            continue
        out[rule[1] + k[len(rule[0]):]] = v
        counts[rule] = counts.get(rule, 0) + 1
    notes = [f"{a}* -> {b}* ({n} keys)" for (a, b), n in counts.items()]
    bias = "fc_mtm.predictions.bias"
    if bias in out:  # as the original: the decoder bias is the prediction bias
        out["fc_mtm.predictions.decoder.bias"] = out[bias]
        notes.append("fc_mtm.predictions.decoder.bias <- fc_mtm.predictions.bias")
    if "enc_img.img_embedding.weight" in out and "enc_img.img_embedding.weight" not in model_keys:
        notes.append("this SwinBERT checkpoint needs the SwinBERT visual projection (enc_img.fc to 512, "
                     "enc_img.img_embedding): build the model with swinbert true")
    return out, ignored, notes


def _solve_window(n_table, n_index=None):
    """Window (wd, wh, ww) of a bias table with n_table rows, assuming a square spatial window."""
    for wh in range(64, 0, -1):
        side = (2 * wh - 1) ** 2
        if n_table % side == 0 and (n_table // side) % 2 == 1:
            wd = (n_table // side + 1) // 2
            if n_index is None or wd * wh * wh == n_index:
                return wd, wh, wh
    raise ValueError(f"cannot infer the window of a {n_table}-row relative position bias table")


def _adapt(key, src, dst, model, sd):
    """Tensor of dst's shape made from src, or None if there is no sensible adaptation; plus a note."""
    if key.endswith("enc_img.emb_pos") or key.endswith("enc_img.emb_len"):
        dim = 2 if key.endswith("emb_pos") else 1
        if src.dim() != dst.dim() or src.shape[-1] != dst.shape[-1]:
            return None, None
        # Slice or pad along the positions/frames axis; extra rows keep the model's current values.
        out = dst.detach().clone()
        n = min(src.shape[dim], dst.shape[dim])
        out.narrow(dim, 0, n).copy_(src.narrow(dim, 0, n))
        return out, f"{key}: {tuple(src.shape)} -> {tuple(dst.shape)} (sliced/padded)"
    if key.endswith("relative_position_bias_table") and src.dim() == 2 and src.shape[1] == dst.shape[1]:
        win_dst = model.get_submodule(key.rsplit(".", 1)[0]).window_size
        idx = sd.get(key.replace("relative_position_bias_table", "relative_position_index"))
        win_src = _solve_window(src.shape[0], idx.shape[0] if idx is not None else None)
        grid = src.t().reshape(1, src.shape[1], *(2 * w - 1 for w in win_src))
        out = F.interpolate(grid.float(), size=tuple(2 * w - 1 for w in win_dst), mode="trilinear",
                            align_corners=False)
        return out.reshape(src.shape[1], -1).t().to(dst.dtype), \
            f"{key}: window {win_src} -> {tuple(win_dst)} (interpolated)"
    if key.endswith("patch_embed.proj.weight") and dst.dim() == 5:
        w = src.unsqueeze(2) if src.dim() == 4 else src  # 2D Swin: one time step
        if w.shape[:2] != dst.shape[:2] or w.shape[3:] != dst.shape[3:]:
            return None, None
        # Spread the kernel evenly over time so a static clip gives the same response (I3D inflation).
        kt = dst.shape[2]
        out = (w.sum(2, keepdim=True) / kt).repeat(1, 1, kt, 1, 1)
        return out.to(dst.dtype), f"{key}: temporal kernel {w.shape[2]} -> {kt} (inflated)"
    return None, None


def load_state_dict_into(model, sd, strict=False, log=print, source="<state_dict>", layout=None):
    """Load an in-memory state_dict with layout detection; returns a :class:`LoadReport`."""
    sd = unwrap(sd)
    layout = layout or detect_layout(sd)
    target = model.state_dict()
    notes = []
    if layout == "video_swin":
        mapped, ignored = _map_video_swin(sd, target)
    elif layout == "hf_bert":
        mapped, ignored, notes = _map_hf_bert(sd, target)
    elif layout == "swinbert":
        mapped, ignored, notes = _map_swinbert(sd, target)
    else:
        mapped, ignored = dict(sd), []
    rep = LoadReport(source=source, layout=layout, ignored=ignored, adapted=notes)
    take = {}
    n_layers = len({k.split(".")[2] for k in target if k.startswith("trsfr.layer.")})
    dropped = set()
    for k, v in mapped.items():
        m = re.match(r"trsfr\.layer\.(\d+)\.", k)
        if k not in target and layout == "hf_bert" and m and int(m.group(1)) >= n_layers:
            dropped.add(int(m.group(1)))  # a model configured with fewer layers takes the first ones
        elif k not in target:
            # Buffers that newer transformers no longer keep in the state_dict are not weights.
            (rep.ignored if k.endswith(("position_ids", "token_type_ids")) else rep.unexpected).append(k)
        elif v.shape == target[k].shape:
            take[k] = v
        else:
            try:
                new, note = _adapt(k, v, target[k], model, mapped)
            except (ValueError, RuntimeError, AttributeError):  # no sensible adaptation: report it
                new, note = None, None
            if new is not None:
                take[k] = new
                rep.adapted.append(note)
            elif k.endswith("relative_position_index"):
                rep.ignored.append(k)  # recomputed from our window size; never learned
            else:
                rep.mismatched.append((k, tuple(v.shape), tuple(target[k].shape)))
    if dropped:
        rep.adapted.append(f"fusion encoder has {n_layers} layers: the file's layers "
                           f"{min(dropped)}-{max(dropped)} are not used (bert_config num_hidden_layers)")
    for a, b in ALIASES:
        for x, y in ((a, b), (b, a)):
            if x in take and y in target and y not in take:
                take[y] = take[x]
    scope = LAYOUT_SCOPE[layout]
    in_scope = [k for k in target if k.startswith(scope)]
    rep.out_of_scope = len(target) - len(in_scope)
    # relative_position_index buffers are derived from the window size, so a file may omit them.
    skipped = {k for k, _, _ in rep.mismatched}
    rep.missing = [k for k in in_scope if k not in take and k not in skipped
                   and not k.endswith("relative_position_index")]
    rep.loaded = sorted(take)
    model.load_state_dict(take, strict=False)
    if log is not None:
        log(str(rep))
    if strict and not rep.ok:
        raise RuntimeError("strict weight loading failed:\n" + str(rep))
    return rep


def load_weights(model, path, strict=False, log=print):
    """Load ``path`` (file or Hugging Face folder) into ``model``; returns a :class:`LoadReport`.

    ``strict=True`` raises RuntimeError (with the report) if anything the layout covers is missing, or if
    any key is unexpected or shape-mismatched; ignored keys never count.
    """
    sd, hint = read_state_dict(path)
    return load_state_dict_into(model, sd, strict=strict, log=log, source=os.fspath(path),
                                layout=hint or detect_layout(sd))
