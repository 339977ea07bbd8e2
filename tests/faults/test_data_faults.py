"""Frame stores and their indexes: crafted or wrong-typed index pickles run no code and are refused;
a truncated .lineidx, a truncated TSV and a stale .pkl are found when the store is opened; frames
start at one column per file, so a corrupt first frame is an error, not a shifted row."""
import base64
import pickle

import pytest

from lavender.errors import DataError
from lavender.data.tsv import TSVFile, write_tsv
from lavender.data.tsv_index import load_id2lineidx
from lavender.data.video_store import VideoStore
from tiny import Payload, frame_rows

ROWS = frame_rows(10)


def store(tmp_path, rows=ROWS, name="img_x.tsv"):
    return write_tsv(tmp_path / name, rows, id2lineidx_path=str(tmp_path / name.replace(".tsv", ".id2lineidx.pkl")))


def open_store(tmp_path, **kw):
    return VideoStore(tmp_path, "x", size_frame=2, size_img=16, **kw)


def test_crafted_index_pickle_runs_no_code(tmp_path, marker):
    store(tmp_path)
    pkl = tmp_path / "img_x.id2lineidx.pkl"
    for proto in (2, pickle.DEFAULT_PROTOCOL):
        with open(pkl, "wb") as f:
            pickle.dump({"vid0": 0, "evil": Payload(marker)}, f, protocol=proto)
        with pytest.raises(DataError, match=r"img_x\.id2lineidx\.pkl: refused to unpickle: it refers to "
                                            r"(builtins|__builtin__)\.exec.*make_id2lineidx_pkl\.py"):
            open_store(tmp_path)


@pytest.mark.parametrize("content, error", [
    ({"vid0": "0"}, r"expected \{str key: byte offset\}, found 'vid0': '0'"),
    ([0, 1], "expected a dict"),
    (b"\x80\x04garbage", "not a readable key index"),
])
def test_wrong_index_pickle(tmp_path, content, error):
    store(tmp_path)
    pkl = tmp_path / "img_x.id2lineidx.pkl"
    pkl.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))
    with pytest.raises(DataError, match=rf"img_x\.id2lineidx\.pkl: {error}"):
        load_id2lineidx(pkl)


def test_truncated_lineidx_is_found_when_opened(tmp_path):
    write_tsv(tmp_path / "d_train_0.tsv", ROWS)
    idx = tmp_path / "d_train_0.lineidx"
    idx.write_text("".join(idx.read_text().splitlines(keepends=True)[:4]))
    with pytest.raises(DataError, match=r"d_train_0\.lineidx lists 4 rows but .*d_train_0\.tsv goes on after "
                                        r"them.*build_lineidx"):
        TSVFile(tmp_path / "d_train_0.tsv")
    with pytest.raises(DataError, match="lists 4 rows"):
        VideoStore.from_tsv(tmp_path / "d_train_0.tsv", 2, 16)


def test_truncated_tsv_is_found_when_opened(tmp_path):
    offs = list(store(tmp_path).values())
    tsv = tmp_path / "img_x.tsv"
    data = tsv.read_bytes()
    tsv.write_bytes(data[: offs[6] + 10])  # rows 7-9 gone, row 6 cut: the pkl points beyond the end
    with pytest.raises(DataError, match=r"img_x\.id2lineidx\.pkl does not match .*img_x\.tsv: the row of key "
                                        r"'vid9' starts at byte \d+ but the TSV has \d+ bytes: the TSV is truncated"):
        open_store(tmp_path)
    tsv.write_bytes(data[:-10])  # the last row cut short
    with pytest.raises(DataError, match=r"img_x\.tsv ends in the middle of the row of key 'vid9'.*truncated"):
        open_store(tmp_path)
    (tmp_path / "img_x.id2lineidx.pkl").unlink()  # read through the .lineidx instead
    with pytest.raises(DataError, match=r"img_x\.tsv ends in the middle of row 9"):
        open_store(tmp_path)


def test_stale_index_pickle_is_found_when_opened(tmp_path):
    store(tmp_path)
    old = (tmp_path / "img_x.id2lineidx.pkl").read_bytes()
    write_tsv(tmp_path / "img_x.tsv", ROWS[::-1])  # same rows, another order: offsets of other keys
    (tmp_path / "img_x.id2lineidx.pkl").write_bytes(old)
    with pytest.raises(DataError, match=r"img_x\.id2lineidx\.pkl is stale: it puts key 'vid9' at byte \d+ of "
                                        r".*img_x\.tsv, but the row there is 'vid0'.*make_id2lineidx_pkl\.py"):
        open_store(tmp_path)


def test_corrupt_first_frame_is_an_error_not_a_shifted_row(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[3][1] = base64.b64encode(b"not an image at all").decode()  # column 1 of one row is corrupt
    store(tmp_path, rows)
    s = open_store(tmp_path)
    assert len(s.frame_strings("vid3")) == 2 and s.frame_column == 1  # not read from column 2
    with pytest.raises(DataError, match=r"img_x\.tsv, key 'vid3', frame 0"):
        s.clip("vid3", train=False)
    s = open_store(tmp_path, skip_bad=True)
    assert s.clip("vid3", train=False) is None and s.n_skipped == 1 and "frame 0" in s.skip_reasons["vid3"]
    assert s.clip("vid4", train=False).shape == (2, 3, 16, 16)


def test_frame_column_and_safety_keys_in_the_config():
    from lavender.errors import ConfigError
    from lavender.config import load_config
    cfg = load_config(["--frame_column", "2", "--ckpt_strict", "false", "--trust_checkpoint", "true"])
    assert cfg.frame_column == 2 and cfg.ckpt_strict is False and cfg.trust_checkpoint is True
    assert load_config([]).frame_column == "auto" and load_config([]).ckpt_strict is True
    for bad in ("0", "two"):
        with pytest.raises(ConfigError, match=rf"frame_column must be 'auto', 'swinbert' or a column number >= 1.*'{bad}'"):
            load_config(["--frame_column", bad])
