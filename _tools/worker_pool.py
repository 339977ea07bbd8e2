"""The process pool of the video tools (extract_video-frame, prepare_dataset, make_demo_data).

Its workers are not forked from the calling process. A fork copies the locks that the caller's other
threads hold at that moment with no thread left to release them: with PyAV 18.1.1, `extract_video-frame.py`'s
forked pool hung for good in a test process that had decoded a video before. Workers start from a fresh
server process ("forkserver"; "spawn" where there is none), so a job function must be importable there:
functions of a tool loaded by file path (names with '-', or under another module name) are loaded again
by that path in each worker.
"""
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import sys
import sysconfig
from contextlib import contextmanager
from pathlib import Path


def _libraries():
    """Names of the caller's imported modules from the Python installation or lavender/, in import order
    (not tests or tools, whose import by name may not work or may do things)."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots = tuple(os.path.join(r, "") for r in roots | {str(Path(__file__).resolve().parents[1] / "lavender")})
    return [name for name, mod in list(sys.modules.items())
            if isinstance(getattr(mod, "__file__", None), str) and mod.__file__.startswith(roots)]


def load_module(name, path):
    """The module at file `path` (a tool: names may contain '-') as `name`, registered in sys.modules so
    that its functions pickle by name; in a worker, the initializer that makes them importable."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _progress(it, total, desc):
    if desc is None:
        return it
    from tqdm import tqdm
    return tqdm(it, total=total, desc=desc, file=sys.stderr)


def start_method() -> str:
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


@contextmanager
def imap(fn, jobs, workers: int, ordered: bool = True, chunksize: int = 1, desc: str | None = None):
    """Yield an iterator of fn(job) over `jobs`: in this process when `workers` <= 1 or there is one job,
    else in a pool of `workers` processes (results in order, or as they finish when not `ordered`); with
    `desc`, behind a progress bar on stderr."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        yield _progress(map(fn, jobs), len(jobs), desc)
        return
    mod = sys.modules[fn.__module__]
    init = () if fn.__module__ == "__main__" else (load_module, (fn.__module__, mod.__file__))
    ctx = mp.get_context(start_method())
    if ctx.get_start_method() == "forkserver":
        # Each worker runs the caller's main module again: the server imports the caller's libraries
        # once, so that the workers find them imported (make_demo_data.py, render + extraction pools:
        # 5.3 + 1.7 s; without the preload 6.0 + 5.1 s; forked from the caller 2.8 + 1.7 s).
        ctx.set_forkserver_preload(_libraries())
    pool = ctx.Pool(workers, *init)
    try:
        yield _progress((pool.imap if ordered else pool.imap_unordered)(fn, jobs, chunksize), len(jobs), desc)
    except BaseException:
        pool.terminate()  # the caller stopped reading: the jobs left are not wanted
        raise
    else:
        pool.close()
    finally:
        pool.join()
