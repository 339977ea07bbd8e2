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

Files are read without running code from them (:func:`load_torch_file`): ``torch.load(weights_only=True)``
with an allow-list of the numpy types that real checkpoints carry, and safetensors natively; a file
that needs full unpickling is refused unless the user trusts it (``trust_checkpoint``).

A load must fit: a file that fills none of the model is always an error, and with ``strict`` (the
``ckpt_strict`` config key, default on) so is one that leaves part of what its layout covers
missing, shape-mismatched or unused. Gaps that are expected (a new task head, a BERT file without an
MLM head, a Kinetics classifier) are reported as such and never count. Only the part of the model
the layout covers is checked (a Kinetics file cannot fill BERT).
"""
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data.errors import DataError

LAYOUT_SCOPE = {
    "lavender": ("",),
    "video_swin": ("enc_img.swin.",),
    "hf_bert": ("enc_txt.", "trsfr.", "fc_mtm."),
    "swinbert": ("enc_img.", "enc_txt.", "trsfr.", "fc_mtm."),
}
# Keys that are the same tensor in the model: filling one fills the other.
ALIASES = (("fc_mtm.predictions.bias", "fc_mtm.predictions.decoder.bias"),)
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TXT_ENCODER = "enc_txt.txt_trsfr."  # the text's own BERT encoder (txt_backbone_embed_only false)
TRUST_HINT = "trust_checkpoint (--trust_checkpoint true)"
STRICT_HINT = "ckpt_strict (--ckpt_strict false)"


class CheckpointError(DataError):
    """A weights file that cannot be used: unreadable, needing full unpickling without trust_checkpoint,
    or not fitting the model."""


def _short(items, n=6):
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


@dataclass
class LoadReport:
    """What a load did. ``ok``: nothing missing (within the layout's scope), unexpected or mismatched,
    apart from the ``expected`` gaps."""
    source: str
    layout: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, model shape)
    ignored: list = field(default_factory=list)     # file keys that are not weights of this model (harmless)
    adapted: list = field(default_factory=list)     # human-readable notes on resized/filled tensors
    expected: dict = field(default_factory=dict)    # reason -> model keys the file is not meant to fill
    out_of_scope: int = 0

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self):
        """One line: what keeps the load from being complete."""
        parts = [f"{len(self.missing)} model tensor(s) missing from the file" if self.missing else "",
                 f"{len(self.mismatched)} of another shape" if self.mismatched else "",
                 f"{len(self.unexpected)} file tensor(s) the model does not have" if self.unexpected else ""]
        return ", ".join(p for p in parts if p)

    def __str__(self):
        scope = ", ".join(p or "<all>" for p in LAYOUT_SCOPE.get(self.layout, ("",)))
        lines = [f"[load_weights] {self.source}", f"  layout: {self.layout} (covers {scope})",
                 f"  loaded: {len(self.loaded)} tensors"]
        if self.out_of_scope:
            lines.append(f"  not covered by this layout (left as they are): {self.out_of_scope} tensors")

        def block(title, items, n=20):
            if items:
                lines.append(f"  {title}: {len(items)}")
                lines.extend(f"    {x}" for x in items[:n])
                if len(items) > n:
                    lines.append(f"    ... ({len(items) - n} more)")
        block("adapted", self.adapted)
        for reason, keys in self.expected.items():
            lines.append(f"  expected, {reason}: {len(keys)}: {_short(keys, 4)}")
        block("MISSING (model keys not in the file)", self.missing)
        block("UNEXPECTED (file keys the model does not have)", self.unexpected)
        block("SHAPE MISMATCHED (skipped; file vs model)",
              [f"{k}: {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched])
        if self.ignored:
            lines.append(f"  ignored (not weights of this model, harmless): {len(self.ignored)}: "
                         + _short(self.ignored))
        lines.append("  result: " + ("OK" if self.ok else f"PARTIAL ({self.problems()}; "
                                                          "those model tensors keep their current values)"))
        return "\n".join(lines)


def _missing_file_error(path):
    name = os.path.basename(os.path.normpath(path)) or str(path)
    low = name.lower()
    if "swin" in low and "_patch4_" in low:  # a 2D Swin (vis_backbone_init 2d)
        hint = (f"put the ImageNet Swin Transformer checkpoint at {os.path.join('_models', 'swin_transformer', name)} "
                "(from the Swin Transformer release), or choose vis_backbone_init 3d (Kinetics) or random")
    elif "swin" in low:
        hint = (f"put the Video Swin checkpoint at {os.path.join('_models', 'video_swin_transformer', name)} "
                "(e.g. swin_base_patch244_window877_kinetics600_22k.pth from the Video Swin Transformer release)")
    elif "bert" in low or "minilm" in low or not os.path.splitext(low)[1]:
        hint = (f"put the Hugging Face model folder at {os.path.join('_models', name)}/ "
                "(config.json + model.safetensors or pytorch_model.bin, e.g. _models/bert-base-uncased/)")
    else:
        hint = "check --path_ckpt: it must name an existing LAVENDER checkpoint (e.g. a ckpt_violet_*.pt file)"
    return FileNotFoundError(f"weights not found: {path}\n  {hint}")


def _numpy_globals():
    """The numpy types found in real checkpoints (mmcv 'meta' scores, RNG states): rebuilding them
    runs no code from the file. numpy 1 wrote ``numpy.core.*``, numpy 2 writes ``numpy._core.*``."""
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    out = [np.ndarray, np.dtype]
    out += [c for c in vars(getattr(np, "dtypes", np)).values() if isinstance(c, type) and issubclass(c, np.dtype)]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(multiarray._reconstruct, f"{mod}._reconstruct"), (multiarray.scalar, f"{mod}.scalar")]
    return out


def _refusal_detail(err):
    """What torch's safe unpickler refused, in a few words."""
    text = str(err)
    names = re.findall(r"GLOBAL ([\w.]+)", text)
    if names:
        return "it refers to " + ", ".join(dict.fromkeys(names))
    after = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0].strip()
    return (after.splitlines() or ["it holds objects the safe loader does not build"])[0]


def _unreadable(path, err):
    known = {EOFError: "the file is empty or ends early", KeyError: "not a file written by torch.save"}
    first = (str(err).strip().splitlines() or [""])[0][:160]
    detail = known.get(type(err)) or f"{type(err).__name__}: {first}"
    return CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail}); is it a weights file "
                           "(.pt/.pth/.bin/.safetensors), and complete (not a cut-short download)?")


def load_torch_file(path, trust=False):
    """``torch.load`` of `path` on the CPU that never runs code from the file.

    Tensors, containers and the numpy types of real checkpoints load; a file that needs full
    unpickling raises CheckpointError naming the file and the opt-in, unless ``trust`` (then it is
    loaded with a warning). Anything unreadable is a CheckpointError too.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a torch.save zip, or a (legacy) pickle protocol >= 2
        raise _unreadable(path, ValueError(f"it starts with {head!r}, not a zip archive or a pickle"))
    try:
        with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # torch's note on plain pickles
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise _unreadable(path, err) from None
        detail = _refusal_detail(err)
    except Exception as err:  # torch reports a non-checkpoint as KeyError, EOFError, RuntimeError...
        raise _unreadable(path, err) from None
    if not trust:
        raise CheckpointError(
            f"{path}: refused to load: it needs full unpickling ({detail}), which can run any code the file "
            f"carries. If you trust where it comes from, set {TRUST_HINT}; else use a file saved as a "
            "plain state_dict or safetensors.")
    warnings.warn(f"{path}: loading with full unpickling because trust_checkpoint is true ({detail})")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except OSError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from None


def read_state_dict(path, trust=False):
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
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu"), hint
        except SafetensorError as err:
            raise _unreadable(path, err) from None
    try:
        return unwrap(load_torch_file(path, trust)), hint
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None


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


# Each mapper: (file state_dict, model keys) -> (state_dict in model names, ignored file keys, notes,
# {model key prefix: why the file is not expected to fill those keys}).
def _head(key):
    """The head a model key belongs to (`fc`, `fc_mtm`, `fc_{type}_{task}`, `emb_task`), or None: the parts
    that differ between LAVENDER model types."""
    first = key.split(".")[0]
    return first if first.startswith("fc") or first == "emb_task" else None


def _map_lavender(sd, model_keys):
    out, ignored = {}, []
    model_heads = {_head(m) for m in model_keys} - {None}
    for k, v in sd.items():
        head = _head(k)
        if head and head not in model_heads:
            ignored.append(k)  # the head of another model type (e.g. pretraining's MLM head in a task-specific model)
        else:
            out[k] = v
    expected = {h + ".": "task-specific head, new for this task (kept as initialised, as the original)"
                for h in model_heads - {"fc_mtm", "emb_task"}}
    expected["emb_task"] = "task-token table, not in VIOLET-style files (kept as initialised)"
    return out, ignored, [], expected


def _map_video_swin(sd, model_keys):
    out, ignored = {}, []
    for k, v in sd.items():
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        # Classifier heads of Kinetics/ImageNet checkpoints and 2D Swin's cached masks are not ours.
        if k.startswith(("cls_head.", "head.")) or k.endswith(".attn_mask"):
            ignored.append(k)
        else:
            out["enc_img.swin." + k] = v
    return out, ignored, [], {}


def _map_hf_bert(sd, model_keys):
    out, ignored = {}, []
    has_head = any(k.startswith("fc_mtm.") for k in model_keys)
    # txt_backbone_embed_only false: the text's own encoder is the BERT encoder too (EncTxt.txt_trsfr)
    txt_encoder = any(k.startswith(TXT_ENCODER) for k in model_keys)
    for k, v in sd.items():
        k2 = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", k))  # pre-2019 LayerNorm names
        base = k2[len("bert."):] if k2.startswith("bert.") else k2
        if base.endswith(("position_ids", "token_type_ids")) or base.startswith(("pooler.", "cls.seq_relationship.")):
            ignored.append(k)
        elif base.startswith("embeddings."):
            out["enc_txt.emb_txt." + base[len("embeddings."):]] = v
        elif base.startswith("encoder."):
            out["trsfr." + base[len("encoder."):]] = v
            if txt_encoder:
                out[TXT_ENCODER + base[len("encoder."):]] = v
        elif base.startswith("cls.predictions."):
            if has_head:
                out["fc_mtm.predictions." + base[len("cls.predictions."):]] = v
            else:
                ignored.append(k)
        else:
            out[k] = v  # reported as unexpected
    dec, word = "fc_mtm.predictions.decoder.weight", "enc_txt.emb_txt.word_embeddings.weight"
    notes, expected = [], {}
    file_head = any(k.startswith("fc_mtm.") for k in out)
    if has_head and dec not in out and word in out:
        # BertForMaskedLM saves its tied decoder only once, as the word embeddings; a BertModel (no MLM
        # head) gets the decoder that Hugging Face would tie to them too.
        out[dec] = out[word].clone()
        notes.append(f"{dec} <- word embeddings ({'tied in the file' if file_head else 'no MLM head in the file'})")
    if has_head and not file_head:
        expected["fc_mtm."] = "the BERT file has no MLM head (a BertModel): kept as initialised"
    return out, ignored, notes, expected


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
    return out, ignored, notes, {}


MAPPERS = {"lavender": _map_lavender, "video_swin": _map_video_swin, "hf_bert": _map_hf_bert,
           "swinbert": _map_swinbert}


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
        size = tuple(2 * w - 1 for w in win_dst)
        grid = src.t().reshape(1, src.shape[1], *(2 * w - 1 for w in win_src)).float()
        if win_src[0] == 1:  # a 2D Swin table: bicubic-resized in space, then tiled over time (inflate_weights)
            if grid.shape[3:] != size[1:]:
                grid = F.interpolate(grid[:, :, 0], size=size[1:], mode="bicubic")[:, :, None]
            out, how = grid.repeat(1, 1, size[0], 1, 1), "2D table resized and tiled over time"
        else:
            out, how = F.interpolate(grid, size=size, mode="trilinear", align_corners=False), "interpolated"
        return out.reshape(src.shape[1], -1).t().to(dst.dtype), f"{key}: window {win_src} -> {tuple(win_dst)} ({how})"
    if key.endswith("patch_embed.proj.weight") and dst.dim() == 5:
        w = src.unsqueeze(2) if src.dim() == 4 else src  # 2D Swin: one time step
        if w.shape[:2] != dst.shape[:2] or w.shape[3:] != dst.shape[3:]:
            return None, None
        # Spread the kernel evenly over time so a static clip gives the same response (I3D inflation; for
        # a 2D kernel the original's inflate_weights: repeated over time, divided by the temporal size).
        kt = dst.shape[2]
        out = (w.sum(2, keepdim=True) / kt).repeat(1, 1, kt, 1, 1)
        return out.to(dst.dtype), f"{key}: temporal kernel {w.shape[2]} -> {kt} (inflated)"
    return None, None


def load_state_dict_into(model, sd, strict=True, log=print, source="<state_dict>", layout=None, warn=None,
                         only=None, skip=None):
    """Load an in-memory state_dict with layout detection; returns a :class:`LoadReport`.

    Raises CheckpointError when nothing fits, or (``strict``) when the load is partial, before the
    model is touched. The report goes to ``log``, or to ``warn`` (default ``log``) for an accepted
    partial load. ``only`` / ``skip``: model-key prefixes to take only / never take from the file
    (``skip`` is a dict {prefix: why}); the completeness check then covers only what is taken.
    """
    sd = unwrap(sd)
    layout = layout or detect_layout(sd)
    target = model.state_dict()
    mapped, ignored, notes, expected = MAPPERS[layout](sd, target)
    skip = dict(skip or {})
    kept = {k: v for k, v in mapped.items() if (only is None or k.startswith(tuple(only)))
            and not k.startswith(tuple(skip))}
    for prefix, why in skip.items():
        n = sum(k.startswith(prefix) for k in mapped)
        if n:
            notes = notes + [f"{n} tensors {prefix}* not taken: {why}"]
    mapped = kept
    rep = LoadReport(source=source, layout=layout, ignored=ignored, adapted=notes)
    take = {}
    n_layers = len({k.split(".")[2] for k in target if k.startswith("trsfr.layer.")})
    dropped = set()
    for k, v in mapped.items():
        m = re.match(r"(?:enc_txt\.txt_)?trsfr\.layer\.(\d+)\.", k)
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
    in_scope = [k for k in target if k.startswith(scope) and (only is None or k.startswith(tuple(only)))
                and not k.startswith(tuple(skip))]
    rep.out_of_scope = len(target) - len(in_scope)
    # relative_position_index buffers are derived from the window size, so a file may omit them.
    skipped = {k for k, _, _ in rep.mismatched}
    missing = [k for k in in_scope if k not in take and k not in skipped and not k.endswith("relative_position_index")]

    def why(k):
        return next((reason for prefix, reason in expected.items() if k.startswith(prefix)), None)
    for k in missing + sorted(skipped):
        if why(k):
            rep.expected.setdefault(why(k), []).append(k)
    rep.missing = [k for k in missing if not why(k)]
    rep.mismatched = [x for x in rep.mismatched if not why(x[0])]
    rep.loaded = sorted(take)
    if not take:
        raise CheckpointError(
            f"{source}: none of its {len(sd)} tensors fits this model (read as layout {layout}): is it a weights "
            f"file for this model? File keys: {_short(sorted(sd), 3)}; model keys: {_short(sorted(target), 3)}")
    if strict and not rep.ok:
        raise CheckpointError(
            f"{source} does not fit this model: {rep.problems()} (layout {layout}). A checkpoint of another "
            f"model or config (sizes, layers)? To load the part that fits anyway, set {STRICT_HINT}.\n{rep}")
    model.load_state_dict(take, strict=False)
    out = log if rep.ok else (warn or log)
    if out is not None:
        out(str(rep))
    return rep


def load_weights(model, path, strict=True, trust=False, log=print, warn=None, only=None, skip=None):
    """Load ``path`` (file or Hugging Face folder) into ``model``; returns a :class:`LoadReport`.

    ``strict`` (the ``ckpt_strict`` key) raises CheckpointError with the report if anything the layout
    covers is missing, or any key is unexpected or shape-mismatched (expected gaps and ignored keys
    never count); without it such a load goes on and the report goes to ``warn``. ``trust`` (the
    ``trust_checkpoint`` key) allows files that need full unpickling. ``only`` / ``skip``: see
    :func:`load_state_dict_into`.
    """
    sd, hint = read_state_dict(path, trust)
    return load_state_dict_into(model, sd, strict=strict, log=log, source=os.fspath(path),
                                layout=hint or detect_layout(sd), warn=warn, only=only, skip=skip)
