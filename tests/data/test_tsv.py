"""TSVFile / writers: layout, index errors, fork safety."""
import os
import pickle

import pytest
import torch

from lavender.errors import DataError
from lavender.data.tsv import TSVFile, build_lineidx, write_tsv
from lavender.fileio import atomic_write
from lavender.data.tsv_index import read_lineidx


def _write_by_hand(path, rows):
    """The original tools' layout, written without our writer."""
    offs, pos = [], 0
    with open(path, "wb") as f:
        for r in rows:
            b = ("\t".join(r) + "\n").encode()
            offs.append(pos)
            f.write(b)
            pos += len(b)
    with open(str(path)[:-4] + ".lineidx", "w") as f:
        f.write("".join(f"{o}\n" for o in offs))
    return offs


ROWS = [[f"vid{i}", f"AAA{i}", "B" * (10 + i)] for i in range(5)]


def test_rows_keys_and_len(tmp_path):
    p = tmp_path / "x.tsv"
    _write_by_hand(p, ROWS)
    t = TSVFile(p)
    assert len(t) == 5
    assert t.row(3) == ROWS[3]
    assert t.row(-1) == ROWS[-1]
    assert t.key(2) == "vid2"
    assert t.row_by_key("vid4") == ROWS[4]
    assert "vid1" in t and "nope" not in t
    assert list(t) == ROWS
    with pytest.raises(IndexError):
        t.row(5)


def test_writer_matches_hand_layout(tmp_path):
    offs = _write_by_hand(tmp_path / "a.tsv", ROWS)
    k2o = write_tsv(tmp_path / "b.tsv", ROWS, id2lineidx_path=str(tmp_path / "b.id2lineidx.pkl"))
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert (tmp_path / "a.lineidx").read_text() == (tmp_path / "b.lineidx").read_text()
    assert list(k2o.values()) == offs
    with open(tmp_path / "b.id2lineidx.pkl", "rb") as f:
        assert pickle.load(f) == {r[0]: o for r, o in zip(ROWS, offs)}
    with pytest.raises(ValueError, match="tab"):
        write_tsv(tmp_path / "c.tsv", [["k", "a\tb"]])
    assert not (tmp_path / "c.tsv").exists()


def test_id2lineidx_without_lineidx(tmp_path):
    p = tmp_path / "img_x.tsv"
    write_tsv(p, ROWS, id2lineidx_path=str(tmp_path / "img_x.id2lineidx.pkl"))
    os.remove(tmp_path / "img_x.lineidx")
    t = TSVFile(p, id2lineidx=str(tmp_path / "img_x.id2lineidx.pkl"))
    assert t.row_by_key("vid3") == ROWS[3]
    assert len(t) == 5  # rows = sorted offsets of the key map


def test_missing_lineidx_and_rebuild(tmp_path):
    p = tmp_path / "x.tsv"
    _write_by_hand(p, ROWS)
    os.remove(tmp_path / "x.lineidx")
    with pytest.raises(DataError, match=r"missing line index .*x\.lineidx.*build_lineidx.*extract_tsv"):
        len(TSVFile(p))
    build_lineidx(p)
    assert TSVFile(p).row(4) == ROWS[4]


def test_mismatched_lineidx(tmp_path):
    p = tmp_path / "x.tsv"
    offs = _write_by_hand(p, ROWS)
    (tmp_path / "x.lineidx").write_text("".join(f"{o + (1 if i == 2 else 0)}\n" for i, o in enumerate(offs)))
    t = TSVFile(p)
    assert t.row(1) == ROWS[1]
    with pytest.raises(DataError, match=r"x\.tsv: row 2 offset .* not the start of a line"):
        t.row(2)


def test_truncated_tsv(tmp_path):
    p = tmp_path / "x.tsv"
    offs = _write_by_hand(p, ROWS)
    with open(p, "r+b") as f:
        f.truncate(offs[3] - 5)
    with pytest.raises(DataError, match=r"x\.lineidx does not match .*x\.tsv.*row 4"):
        len(TSVFile(p))


def test_missing_key(tmp_path):
    p = tmp_path / "x.tsv"
    _write_by_hand(p, ROWS)
    with pytest.raises(DataError, match=r"key 'video9' not found in .*x\.tsv"):
        TSVFile(p).row_by_key("video9")
    with pytest.raises(DataError, match="missing TSV"):
        TSVFile(tmp_path / "nope.tsv")


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as f:
            f.write("new")
            raise RuntimeError
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_read_lineidx_rejects_garbage(tmp_path):
    (tmp_path / "l.lineidx").write_text("0\n7\n")
    assert read_lineidx(tmp_path / "l.lineidx") == [0, 7]
    (tmp_path / "l.lineidx").write_text("0\nxx\n")
    with pytest.raises(DataError, match=r"l\.lineidx: line 2"):
        read_lineidx(tmp_path / "l.lineidx")


class _Rows(torch.utils.data.Dataset):
    def __init__(self, tsv):
        self.tsv = tsv

    def __len__(self):
        return len(self.tsv)

    def __getitem__(self, i):
        return self.tsv.row(i)[0] + "|" + self.tsv.row_by_key(f"vid{i}")[2]


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_workers(tmp_path, workers):
    rows = [[f"vid{i}", "x" * (i % 7 + 1), "y" * (i + 1)] for i in range(40)]
    write_tsv(tmp_path / "x.tsv", rows)
    tsv = TSVFile(tmp_path / "x.tsv")
    tsv.row(0)  # handle opened in the parent before the fork
    dl = torch.utils.data.DataLoader(_Rows(tsv), batch_size=4, num_workers=workers,
                                     multiprocessing_context="fork" if workers else None)
    got = [s for b in dl for s in b]
    assert got == [f"vid{i}|{'y' * (i + 1)}" for i in range(40)]
    assert tsv.row(5) == rows[5]  # parent handle still usable
