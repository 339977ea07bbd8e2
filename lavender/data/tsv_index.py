"""The indexes of a frame TSV: ``X.lineidx`` (the decimal byte offset of every row start, one per line) and
``X.id2lineidx.pkl`` (a pickled ``{key: byte offset}``, read without running code from it: safe_pickle.py),
their paths, and how to rebuild them (docs/data.md#files-per-dataset)."""
from __future__ import annotations

import os
import pickle
from typing import Dict, Iterable, List

from ..errors import DataError
from ..fileio import atomic_write
from .safe_pickle import load_plain_pickle

__all__ = ["lineidx_path_for", "id2lineidx_path_for", "tsv_path_for", "rebuild_hint", "write_lineidx",
           "read_lineidx", "save_id2lineidx", "load_id2lineidx"]


def lineidx_path_for(tsv_path) -> str:
    """``X.tsv`` -> ``X.lineidx``."""
    return os.path.splitext(str(tsv_path))[0] + ".lineidx"


def id2lineidx_path_for(tsv_path) -> str:
    """``X.tsv`` -> ``X.id2lineidx.pkl``."""
    return os.path.splitext(str(tsv_path))[0] + ".id2lineidx.pkl"


def tsv_path_for(index_path) -> str:
    """``X.lineidx`` / ``X.id2lineidx.pkl`` -> ``X.tsv``."""
    index_path = str(index_path)
    for ext in (".id2lineidx.pkl", ".lineidx"):
        if index_path.endswith(ext):
            return index_path[:-len(ext)] + ".tsv"
    return os.path.splitext(index_path)[0] + ".tsv"


def rebuild_hint(tsv_path, index_path=None) -> str:
    """How to rebuild the index of `tsv_path` (an ``.id2lineidx.pkl`` when `index_path` is one, else the
    ``.lineidx``); both commands read the TSV itself."""
    tsv_path = str(tsv_path)
    if index_path and str(index_path).endswith(".pkl"):
        return (f"rebuild it with `python _tools/make_id2lineidx_pkl.py --input_file {tsv_path} "
                f"--output_file {index_path}` (which also rewrites the .lineidx)")
    return (f"rebuild it with `python -c \"from lavender.data.tsv import build_lineidx; "
            f"build_lineidx('{tsv_path}')\"`")


def write_lineidx(path, offsets: Iterable[int]) -> None:
    """Write decimal byte offsets, one per line (atomic)."""
    with atomic_write(path, "w") as f:
        for o in offsets:
            f.write(f"{int(o)}\n")


def read_lineidx(path) -> List[int]:
    """Read a ``.lineidx`` file; raise DataError if it is missing or not integers."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError(f"missing line index {path}: {rebuild_hint(tsv_path_for(path))}, "
                        f"or write the TSV with _tools/extract_tsv.py (which writes both files)")
    out = []
    with open(path, "r") as f:
        for n, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(int(line))
            except ValueError:
                raise DataError(f"{path}: line {n + 1} is not a byte offset: {line[:40]!r}") from None
    return out


def save_id2lineidx(path, key2off: Dict[str, int]) -> None:
    """Pickle ``{key: byte offset}`` atomically (the original ``id2lineidx.pkl`` format)."""
    with atomic_write(path, "wb") as f:
        pickle.dump(dict(key2off), f)


def load_id2lineidx(path, tsv_path=None) -> Dict[str, int]:
    """Load an ``id2lineidx.pkl`` without running code from it; DataError if missing or not
    a dict {str key: int byte offset}."""
    path = str(path)
    hint = rebuild_hint(tsv_path or tsv_path_for(path), path)
    if not os.path.exists(path):
        raise DataError(f"missing key index {path}: {hint}")
    d = load_plain_pickle(path, "key index {key: byte offset}", hint)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict {{key: byte offset}}, got {type(d).__name__}; {hint}")
    for k, v in d.items():
        if not isinstance(k, str) or type(v) is not int or v < 0:
            raise DataError(f"{path}: expected {{str key: byte offset}}, found {k!r}: {v!r}; {hint}")
    return d

