"""Numeric precision of a run: which one (`resolve_precision`) and its autocast context."""
import contextlib
import logging

import torch

log = logging.getLogger("lavender")

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(cfg, device):
    """fp32 / fp16 / bf16. `auto`: fp16 autocast with a loss scaler on a GPU, as the original always trained
    (DeepSpeed fp16, or autocast + GradScaler when its args turned DeepSpeed off); fp32 on a CPU
    (docs/differences.md#the-main-differences)."""
    p = cfg.precision
    if p == "auto":
        p = "fp16" if device.type == "cuda" else "fp32"
    if p == "fp16" and device.type != "cuda":
        log.warning("fp16 needs a GPU; using fp32 on %s", device)
        p = "fp32"
    return p


def autocast(precision, device):
    """Mixed-precision context for a resolved precision ("fp32": none)."""
    dt = AMP_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dt) if dt is not None else contextlib.nullcontext()
