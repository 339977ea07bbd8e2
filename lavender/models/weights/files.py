"""Reading weights files without running code from them: torch checkpoints (weights-only unpickling with an
allow-list of the numpy types real checkpoints carry), safetensors, and Hugging Face model folders.

A file that needs full unpickling is refused unless the user trusts it (``trust_checkpoint``, given on the
command line), since unpickling can run any code the file carries.
"""
import os
import pickle
import re
import warnings

import torch

from ...errors import CheckpointError

__all__ = ["HF_WEIGHT_FILES", "TRUST_HINT", "load_torch_file", "read_state_dict", "unwrap"]

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TRUST_HINT = "trust_checkpoint (--trust_checkpoint true)"


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

