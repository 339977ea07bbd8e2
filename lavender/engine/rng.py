"""Global RNG seeding, the RNG state that a resumed run restores, and the deterministic switch."""
import contextlib
import logging
import os
import random

import numpy as np
import torch

from ..errors import ConfigError

log = logging.getLogger("lavender")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state():
    """Every global RNG's state, as tensors and Python scalars (so resume files load with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st):
    random.setstate(st["python"])
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@contextlib.contextmanager
def deterministic_mode(on):
    """`deterministic true` (docs/reliability.md#determinism): deterministic kernels only
    (torch.use_deterministic_algorithms; an operation without one is a ConfigError naming it), cuDNN without
    autotuning, cuBLAS with a fixed workspace (set before the first cuBLAS call: the model is still on the CPU
    when this is entered). Restored on exit. Data order, augmentation and workers are seeded either way."""
    if not on:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    log.info("deterministic algorithms on; %d CPU threads (another count gives other sums)", torch.get_num_threads())
    try:
        yield
    except RuntimeError as e:
        if "deterministic implementation" not in str(e):
            raise
        raise ConfigError(f"deterministic true: {str(e).strip().splitlines()[0]} (run without --deterministic, "
                          f"or on a device that has one)") from None
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
        if saved[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
