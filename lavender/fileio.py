"""Atomic file writes: every output (checkpoint, JSON, TSV, index) goes to a temporary file beside
its destination and is renamed over it only when complete, so a crash never leaves half a file.
A write that fails for want of space (disk full, quota, file-size limit) is one OutputError naming the
file and the free space; the temporary files a killed process left behind are found by their names
(docs/reliability.md#atomic-writes)."""
import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile

from .errors import OutputError

__all__ = ["atomic_write", "atomic_json", "atomic_torch_save", "atomic_npy", "append_text",
           "remove_orphaned_temp_files"]

# errors of a write that ran out of room: disk full, quota exceeded, file-size limit (ulimit -f)
NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# `.{name}.{pid}@{host}.{random}.tmp`: the writer is known, so an orphan of a dead one can be removed
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[^/]*)\.[A-Za-z0-9_]+\.tmp$")


def _no_room(err):
    """The OSError of a failed write behind `err` (torch's writer re-raises it as a RuntimeError), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_ROOM:
            return err
        err = err.__cause__ or err.__context__
    return None


def _mb(n):
    return f"{n / 2**20:.1f} MB"


def write_failed(path, err):
    """The OutputError of a write of `path` that failed with OSError `err`."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{_mb(shutil.disk_usage(d).free)} free on {d}"
    except OSError:
        free = f"free space of {d} unknown"
    return OutputError(f"cannot write {path}: {err.strerror or err} ({free}); files written before are left as they "
                       f"were: make room (or raise the file-size limit, `ulimit -f`) and run again")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temp file next to `path`; on success move it over `path` (never a half-written file)."""
    path = str(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    owner = f"{os.getpid()}@{socket.gethostname()}"
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{owner}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        no_room = _no_room(e)
        if no_room is not None:
            raise write_failed(path, no_room) from None
        raise


def append_text(path, text):
    """Append `text` to `path`; no room for it is an OutputError as for `atomic_write`."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        if e.errno in NO_ROOM:
            raise write_failed(path, e) from None
        raise


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: a process of another user
        return True
    return True


def remove_orphaned_temp_files(folder, all_temp=False):
    """Remove the temporary files under `folder` that writers killed mid-write left behind: those whose
    writing process (this host) is gone, or, with `all_temp` (a folder this process now owns, such as the
    run it resumes), every `*.tmp`. Returns [(path, bytes)] of the removed files."""
    removed, host = [], socket.gethostname()
    for root, _, files in os.walk(folder):
        for name in files:
            if not name.endswith(".tmp"):
                continue
            m = _TEMP.match(name)
            orphan = all_temp or (m is not None and m["host"] == host and not _alive(int(m["pid"])))
            path = os.path.join(root, name)
            if orphan:
                with contextlib.suppress(OSError):
                    size = os.path.getsize(path)
                    os.remove(path)
                    removed.append((path, size))
    return removed


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
