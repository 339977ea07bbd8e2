"""_tools: a bad input is one line on stderr and exit status 2 (traceback only with --debug or
LAVENDER_DEBUG=1); frame pickles run no code and are type-checked; the TSV index is rebuilt from the
TSV itself; a row whose frame does not decode is reported."""
import base64
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lavender.run import EXIT_USER_ERROR, main_guard
from lavender.errors import DataError
from lavender.data.tsv import TSVFile, write_tsv
from tiny import Payload, frame_b64, frame_rows
from tool_loader import load_tool

ROWS = frame_rows(10)
TOOLS = Path(__file__).resolve().parents[2] / "_tools"


def guarded(capsys, name, argv):
    """(exit status, stderr) of a tool's main run the way its __main__ runs it."""
    rc = main_guard(load_tool(name).main, argv)
    return rc, capsys.readouterr().err


def test_every_tool_reports_user_errors_through_main_guard():
    files = list(TOOLS.glob("*.py"))
    scripts = [p for p in files if 'if __name__ == "__main__":' in p.read_text()]
    assert {p.name for p in files} - {p.name for p in scripts} == {"worker_pool.py"}  # the module they share
    for path in scripts:
        assert "sys.exit(main_guard(main))" in path.read_text(), f"{path.name} does not use lavender.run.main_guard"


def test_crafted_frame_pickle_subprocess(tmp_path, marker):
    with open(tmp_path / "v.pkl", "wb") as f:
        pickle.dump({"a": [frame_b64(0)], "b": Payload(marker)}, f)
    cmd = [sys.executable, str(TOOLS / "extract_tsv.py"), "--path", "v"]
    env = dict(os.environ, LAVENDER_DEBUG="0")
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == EXIT_USER_ERROR and r.stdout == ""
    assert r.stderr.startswith("error: v.pkl: refused to unpickle: it refers to builtins.exec")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "v.tsv").exists()


@pytest.mark.parametrize("value, error", [
    ("/9j/AAAA", r"video 'a': expected a non-empty list of base64 frames, got str '/9j/AAAA'"),
    ([b"\x89PNG"], r"video 'a', frame 0: expected one line of base64 JPEG/PNG, got str"),
    ([frame_b64(0), 7], r"video 'a', frame 1: expected one line of base64 JPEG/PNG, got int 7"),
    ([], r"video 'a': expected a non-empty list"),
])
def test_extract_tsv_checks_value_types(tmp_path, capsys, value, error):
    with open(tmp_path / "v.pkl", "wb") as f:
        pickle.dump({"b": [frame_b64(1)], "a": value}, f)
    rc, err = guarded(capsys, "extract_tsv", ["--path", str(tmp_path / "v")])
    assert rc == EXIT_USER_ERROR and err.startswith(f"error: {tmp_path / 'v.pkl'}: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(error, err), err
    assert not (tmp_path / "v.tsv").exists()


def test_make_id2lineidx_reads_the_tsv_not_a_truncated_lineidx(tmp_path, capsys):
    write_tsv(tmp_path / "x.tsv", ROWS)
    idx = tmp_path / "x.lineidx"
    idx.write_text("".join(idx.read_text().splitlines(keepends=True)[:4]))
    mk = load_tool("make_id2lineidx_pkl")
    assert mk.main(["--input_file", str(tmp_path / "x.tsv"), "--output_file", str(tmp_path / "x.pkl")]) == 0
    out = capsys.readouterr().out
    assert "rewrote" in out and "listed 4 rows, not the 10 found" in out and "wrote 10 keys" in out
    t = TSVFile(tmp_path / "x.tsv", id2lineidx=str(tmp_path / "x.pkl"))
    assert len(t) == 10 and t.row_by_key("vid9") == ROWS[9]
    # a TSV cut in its last row: reported, not indexed, exit status 1
    data = (tmp_path / "x.tsv").read_bytes()
    (tmp_path / "x.tsv").write_bytes(data[:-7])
    assert mk.main(["--input_file", str(tmp_path / "x.tsv"), "--output_file", str(tmp_path / "x.pkl")]) == 1
    assert "bad row 9 (vid9): the file ends in the middle of this row" in capsys.readouterr().out


def test_visualize_reports_a_row_whose_frame_does_not_decode(tmp_path, capsys):
    rows = [list(r) for r in ROWS]
    rows[2][1] = base64.b64encode(b"garbage").decode()
    write_tsv(tmp_path / "x.tsv", rows)
    rc, err = guarded(capsys, "visualize_frame_tsv", ["--input_file", str(tmp_path / "x.tsv"), "--key", "vid2",
                                                      "--output", str(tmp_path / "g.png")])
    assert rc == EXIT_USER_ERROR and "x.tsv, key 'vid2', frame 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("name, argv, names", [
    ("extract_tsv", ["--path", "{d}/none"], "none.pkl"),
    ("extract_video-frame", ["--path", "x", "--sample", "2", "--input_dir", "{d}/none"], "none"),
    ("make_id2lineidx_pkl", ["--input_file", "{d}/none.tsv", "--output_file", "{d}/o.pkl"], "none.tsv"),
    ("visualize_frame_tsv", ["--input_file", "{d}/none.tsv"], "none.tsv"),
    ("split_tsv_parts", ["--input_file", "{d}/none.tsv", "--name", "x"], "none.tsv"),
    ("check_reference", ["--ref", "{d}/none.pt"], "none.pt"),
])
def test_missing_inputs_are_one_line(tmp_path, capsys, name, argv, names):
    rc, err = guarded(capsys, name, [a.format(d=tmp_path) for a in argv])
    assert rc == EXIT_USER_ERROR and err.startswith("error: ") and names in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_main_guard_debug_keeps_the_traceback(capsys, monkeypatch):
    def main(argv):
        assert argv == ["--x"]  # --debug is not passed on
        raise DataError("f.tsv: row 3 is bad")
    monkeypatch.delenv("LAVENDER_DEBUG", raising=False)
    assert main_guard(main, ["--x"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: f.tsv: row 3 is bad\n"
    with pytest.raises(DataError):
        main_guard(main, ["--x", "--debug"])
    monkeypatch.setenv("LAVENDER_DEBUG", "1")
    with pytest.raises(DataError):
        main_guard(main, ["--x"])
    with pytest.raises(ZeroDivisionError):  # a bug is never hidden
        main_guard(lambda argv: 1 / 0, [])


class _BadRows(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise DataError(f"img_x.tsv, key 'vid{i}', frame 0: cannot decode image")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_data_error_in_a_loader_worker_is_the_same_one_line(capsys, workers):
    def main(argv):
        loader = torch.utils.data.DataLoader(_BadRows(), num_workers=workers,
                                             multiprocessing_context="fork" if workers else None)
        next(iter(loader))
    assert main_guard(main, []) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: img_x.tsv, key 'vid0', frame 0: cannot decode image\n"
