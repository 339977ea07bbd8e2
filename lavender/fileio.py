"""Atomic file writes: every output (checkpoint, JSON, TSV, index) goes to a temporary file beside
its destination and is renamed over it only when complete, so a crash never leaves half a file."""
import contextlib
import json
import os
import tempfile

__all__ = ["atomic_write", "atomic_json", "atomic_torch_save", "atomic_npy"]


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temp file next to `path`; on success move it over `path` (never a half-written file)."""
    path = str(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_json(obj, path, **kw):
    """JSON (indent 1 unless given) written atomically."""
    kw.setdefault("indent", 1)
    with atomic_write(path, "w") as f:
        json.dump(obj, f, **kw)


def atomic_torch_save(obj, path):
    """torch.save written atomically (never a half-written checkpoint)."""
    import torch
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def atomic_npy(arr, path):
    """numpy .npy written atomically."""
    import numpy as np
    with atomic_write(path, "wb") as f:
        np.save(f, arr)
