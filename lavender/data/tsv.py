"""TSV frame stores: the one reader (`TSVFile`) and the writer (`write_tsv`); their indexes: tsv_index.py.

Layout (kept from the original tools so files round-trip):
  * ``X.tsv``: one row per video, fields separated by ``\\t``, rows end with ``\\n``;
    field 0 is the key (video id), the other fields are base64 frames (see codec.py
    for the frame-column rule).
  * ``X.lineidx`` / ``X.id2lineidx.pkl``: the row offsets / the key map (tsv_index.py).

Reads are binary so offsets are byte offsets. The file handle is opened lazily and
re-opened when the process id changes, so a `TSVFile` can be created in the main
process and used in forked DataLoader workers, or with ``num_workers=0``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import DataError
from ..fileio import atomic_write
from .tsv_index import (lineidx_path_for, load_id2lineidx, read_lineidx, rebuild_hint, save_id2lineidx,
                        write_lineidx)

__all__ = ["TSVFile", "build_lineidx", "write_tsv", "scan_rows", "split_row", "head_rows", "check_unique_keys",
           "line_numbers"]


def scan_rows(tsv_path) -> Iterator[Tuple[int, bytes]]:
    """(byte offset, raw line) of every non-blank row, read from the TSV itself (no index)."""
    pos = 0
    with open(str(tsv_path), "rb") as f:
        for line in f:
            if line.strip():
                yield pos, line
            pos += len(line)


def split_row(line: bytes, where: str) -> List[str]:
    """A raw TSV line -> its fields, stripped; DataError naming `where` if it is not UTF-8."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{where} is not valid UTF-8") from None
    return [x.strip() for x in text.split("\t")]


def head_rows(tsv_path, n: int) -> List[List[str]]:
    """The first `n` rows of a TSV in file order (to decide how the file is laid out)."""
    out = []
    for i, (off, line) in enumerate(scan_rows(tsv_path)):
        if i == n:
            break
        out.append(split_row(line, f"{tsv_path}: row {i} at byte {off}"))
    return out


def check_unique_keys(tsv_path, lines: Dict[str, List[int]]) -> None:
    """A key names one row: DataError listing the keys that are on several lines ({key: [line, ...]})."""
    dup = {k: v for k, v in lines.items() if len(v) > 1}
    if dup:
        shown = "; ".join(f"{k!r} on lines {', '.join(map(str, v))}" for k, v in list(dup.items())[:5])
        raise DataError(f"{tsv_path}: {len(dup)} video id(s) on more than one row ({shown}"
                        f"{'; ...' if len(dup) > 5 else ''}): a key must name one row; remove or rename the "
                        f"duplicates and rebuild the index")


def line_numbers(tsv_path, offsets: Iterable[int]) -> Dict[int, int]:
    """{byte offset: 1-based line number} of row starts (reads the file: for error messages)."""
    want, out, n, pos = set(offsets), {}, 0, 0
    with open(str(tsv_path), "rb") as f:
        for line in f:
            n += 1
            if pos in want:
                out[pos] = n
            pos += len(line)
    return out


def build_lineidx(tsv_path, lineidx_path: Optional[str] = None) -> List[int]:
    """Scan `tsv_path` and write its ``.lineidx`` (row start offsets). Returns the offsets."""
    offsets = [off for off, _ in scan_rows(tsv_path)]
    write_lineidx(lineidx_path or lineidx_path_for(tsv_path), offsets)
    return offsets


def write_tsv(tsv_path, rows: Iterable[Sequence[str]], lineidx_path: Optional[str] = None,
              id2lineidx_path: Optional[str] = None) -> Dict[str, int]:
    """Stream `rows` (lists of str fields) to ``tsv`` + ``.lineidx`` (+ optional id2lineidx pkl).

    Every file is written atomically. Returns ``{key: offset}`` of the rows written.
    """
    tsv_path = str(tsv_path)
    key2off: Dict[str, int] = {}
    offsets: List[int] = []
    lines: Dict[str, List[int]] = {}
    with atomic_write(tsv_path, "wb") as f:
        pos = 0
        for row in rows:
            fields = [str(x) for x in row]
            for x in fields:
                if "\t" in x or "\n" in x:
                    raise ValueError(f"{tsv_path}: field of row {fields[0]!r} contains a tab or newline")
            data = ("\t".join(fields) + "\n").encode("utf-8")
            offsets.append(pos)
            key2off.setdefault(fields[0], pos)
            lines.setdefault(fields[0], []).append(len(offsets))
            f.write(data)
            pos += len(data)
        check_unique_keys(tsv_path, lines)  # before the file is in place: nothing is written
    write_lineidx(lineidx_path or lineidx_path_for(tsv_path), offsets)
    if id2lineidx_path:
        save_id2lineidx(id2lineidx_path, key2off)
    return key2off


class TSVFile:
    """Random access to rows of one TSV file.

    Args:
        path: the ``.tsv`` file.
        id2lineidx: optional ``{key: byte offset}`` dict or path of an ``id2lineidx.pkl``;
            without it the key map is built from the lineidx + row keys on first key lookup.
        lineidx: optional path of the ``.lineidx`` (default: beside the TSV). When it is
            missing but `id2lineidx` is given, the sorted offsets of `id2lineidx` are the rows.
    """

    def __init__(self, path, id2lineidx=None, lineidx: Optional[str] = None):
        self.path = str(path)
        if not os.path.exists(self.path):
            raise DataError(f"missing TSV file {self.path}")
        self.lineidx_path = str(lineidx) if lineidx else lineidx_path_for(self.path)
        self._id2lineidx_src = id2lineidx
        self._key_map_checked = False
        self._index_name = None  # the key index file, named when a row does not carry its key
        self._offsets: Optional[List[int]] = None
        self._key2off: Optional[Dict[str, int]] = None
        self._fh = None
        self._pid = None
        self._size = os.path.getsize(self.path)
        # Load and check the index the file is read through now, so that a truncated TSV or a stale
        # index is reported when the store is opened, not in the middle of a run.
        if id2lineidx is not None:
            self._key_map_src()
        else:
            self.offsets

    # -- pickling (spawned workers): never ship an open handle
    def __getstate__(self):
        st = self.__dict__.copy()
        st["_fh"] = None
        st["_pid"] = None
        return st

    def _file(self):
        # one handle per process: a handle inherited through fork shares its offset with the parent
        pid = os.getpid()
        if self._fh is None or self._pid != pid:
            self._fh = open(self.path, "rb")
            self._pid = pid
        return self._fh

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # -- index
    def _key_map_src(self) -> Optional[Dict[str, int]]:
        src = self._id2lineidx_src
        if src is None or self._key_map_checked:
            return src
        name = "the key map" if isinstance(src, dict) else str(src)
        if not isinstance(src, dict):
            src = load_id2lineidx(src, self.path)
        if src:
            # The row furthest into the file must be there, start a line, carry its key and end
            # with a newline: a cheap test that catches a truncated TSV and most stale indexes.
            key, off = max(src.items(), key=lambda kv: kv[1])
            hint = rebuild_hint(self.path, name)
            self._check_row_end(off, f"the row of key {key!r}", name, hint)
            got = self._key_at(off, f"the row of key {key!r}", hint)
            self._check_key(key, got, off, name, hint)
        self._id2lineidx_src, self._key_map_checked = src, True
        self._index_name = name
        return src

    def _check_key(self, key: str, got: str, off: int, index: str, hint: str) -> None:
        """The row an index gives for `key` must carry it (its field 0, or a file name of that stem)."""
        if got != key and Path(got).stem != key:
            raise DataError(f"{index} is stale: it puts key {key!r} at byte {off} of {self.path}, "
                            f"but the row there is {got!r}; {hint}")

    def _check_row_end(self, offset: int, what: str, index: str, hint: str):
        """The row at `offset` must lie inside the file, start a line and end with a newline;
        returns the handle positioned after it."""
        if offset >= self._size:
            raise DataError(f"{index} does not match {self.path}: {what} starts at byte {offset} but the "
                            f"TSV has {self._size} bytes: the TSV is truncated (copy or write it again) or "
                            f"the index is stale ({hint})")
        f = self._seek_row(offset, what, hint)
        line = f.readline()
        if not line.endswith(b"\n"):
            raise DataError(f"{self.path} ends in the middle of {what} (at byte {offset + len(line)}, "
                            f"without the row's newline): the TSV is truncated; copy or write it again")
        return f

    def _check_offsets(self, offs: List[int]) -> None:
        """The last indexed row ends the file (only blank lines may follow)."""
        hint = rebuild_hint(self.path)
        if offs:
            f = self._check_row_end(offs[-1], f"row {len(offs) - 1}", self.lineidx_path, hint)
        else:
            f = self._file()
            f.seek(0)
        end = f.tell()
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                return
            if chunk.strip():
                raise DataError(f"{self.lineidx_path} lists {len(offs)} rows but {self.path} goes on after "
                                f"them (from byte {end}): the .lineidx is truncated or stale, so rows would "
                                f"be silently unused; {hint}")

    @property
    def offsets(self) -> List[int]:
        if self._offsets is None:
            if not os.path.exists(self.lineidx_path) and self._key_map_src() is not None:
                offs = sorted(set(self._key_map_src().values()))
            else:
                offs = read_lineidx(self.lineidx_path)
                self._check_offsets(offs)
            self._offsets = offs
        return self._offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def _seek_row(self, offset: int, what: str, hint: Optional[str] = None):
        """Validate `offset` as a row start and leave the handle positioned there."""
        hint = hint or "rebuild the index (see _datasets/README.md)"
        if offset < 0 or offset >= self._size:
            raise DataError(f"{self.path}: {what} starts at byte {offset}, beyond the end of the file "
                            f"({self._size} bytes): truncated TSV or stale index; {hint}")
        f = self._file()
        if offset > 0:
            f.seek(offset - 1)
            if f.read(1) != b"\n":
                raise DataError(f"{self.path}: {what} offset {offset} is not the start of a line "
                                f"(the index does not match this TSV); {hint}")
        else:
            f.seek(0)
        return f

    def row_at(self, offset: int, what: str = "row") -> List[str]:
        """The row starting at byte `offset`, split on tabs, fields stripped."""
        line = self._seek_row(int(offset), what).readline()
        return split_row(line, f"{self.path}: {what} at byte {offset}")

    def row(self, i: int) -> List[str]:
        """Row `i` (0-based, lineidx order)."""
        offs = self.offsets
        if not -len(offs) <= i < len(offs):
            raise IndexError(f"{self.path}: row {i} out of range ({len(offs)} rows)")
        return self.row_at(offs[i], f"row {i % len(offs)}")

    def _key_at(self, offset: int, what: str, hint: Optional[str] = None) -> str:
        f = self._seek_row(offset, what, hint)
        buf = b""
        while True:
            chunk = f.read(4096)
            buf += chunk
            cut = min((j for j in (buf.find(b"\t"), buf.find(b"\n")) if j >= 0), default=-1)
            if cut >= 0 or not chunk:
                return (buf[:cut] if cut >= 0 else buf).decode("utf-8", "replace").strip()

    def key(self, i: int) -> str:
        """Field 0 of row `i` (reads only up to the first tab)."""
        offs = self.offsets
        if not -len(offs) <= i < len(offs):
            raise IndexError(f"{self.path}: row {i} out of range ({len(offs)} rows)")
        return self._key_at(offs[i], f"row {i % len(offs)}")

    @property
    def key2offset(self) -> Dict[str, int]:
        """``{key: byte offset}``: from the id2lineidx pkl if given, else built once from lineidx + keys."""
        if self._key2off is None:
            src = self._key_map_src()
            if src is not None:
                self._key2off = src
            else:
                rows: Dict[str, List[int]] = {}
                for i, o in enumerate(self.offsets):
                    rows.setdefault(self._key_at(o, f"row {i}"), []).append(o)
                if len(rows) < len(self.offsets):
                    at = line_numbers(self.path, self.offsets)
                    check_unique_keys(self.path, {k: [at.get(o, o) for o in v] for k, v in rows.items()})
                self._key2off = {k: v[0] for k, v in rows.items()}
        return self._key2off

    def keys(self) -> List[str]:
        return list(self.key2offset.keys())

    def __contains__(self, key) -> bool:
        return key in self.key2offset

    def row_by_key(self, key: str) -> List[str]:
        """The row whose key is `key`; DataError naming the key and the file if absent."""
        off = self.key2offset.get(key)
        if off is None:
            raise DataError(f"key {key!r} not found in {self.path} ({len(self.key2offset)} keys)")
        row = self.row_at(off, f"row of key {key!r}")
        # every read checks the row is the one asked for (a stale index with swapped offsets reads another
        # video's frames otherwise); field 0 is already in hand, so this costs nothing
        index = self._index_name or self.lineidx_path
        self._check_key(key, row[0], off, index, rebuild_hint(self.path, index))
        return row

    def __iter__(self) -> Iterator[List[str]]:
        for i in range(len(self)):
            yield self.row(i)

    def __repr__(self) -> str:
        return f"TSVFile({self.path!r})"

