"""Bad input is one `error:` line with exit status 2, before the run folder is made; what the data loses
anyway (texts cut by size_txt, answers that are no vocabulary token) is counted per split in the log and
log.json (issue 22, 6-7)."""
import json
import os

import pytest

from tiny import tiny_argv

QA = "main_qaoe_mlm.py"


def _argv(world, out, **kw):
    return tiny_argv(world, out, "tiny-qa", "qaoe", **dict(dict(size_epoch=1, eval_splits=["val"]), **kw))


def _no_run_folder(out):
    return not [d for d in os.listdir(out) if d.startswith("_")]


@pytest.mark.parametrize("extra, json_extra, words", [
    (["--lr", "-0.1"], {}, ["lr", "-0.1"]),
    (["--lr", "nan"], {}, ["lr", "nan"]),
    ([], {"size_epoch": 2.5}, ["size_epoch", "2.5"]),
    (["--data_ratio", "-0.5"], {}, ["data_ratio", "-0.5"]),
    (["--size_img", "7"], {}, ["size_img", "7"]),
    (["--logging_steps", "0"], {}, ["logging_steps", "0"]),
    (["--eval_only", "true", "--size_epoch", "3"], {}, ["eval_only", "size_epoch 3"]),
], ids=["lr-negative", "lr-nan", "size_epoch-2.5-in-json", "data_ratio-negative", "size_img-7", "logging_steps-0",
        "eval_only-with-size_epoch"])
def test_nonsense_settings_are_refused_before_the_run_folder(world, tmp_path, script, refused, extra, json_extra,
                                                             words):
    argv = _argv(world, tmp_path, **json_extra) + extra
    rc, _, err = script(QA, argv)
    refused(rc, err, *words)
    assert _no_run_folder(tmp_path)


def test_a_key_given_twice_in_a_config_file(world, tmp_path, script, refused):
    argv = _argv(world, tmp_path)
    text = open(argv[1]).read()
    with open(argv[1], "w") as f:
        f.write('{"lr": 0.5, ' + text.lstrip()[1:])  # lr twice: JSON would keep the last silently
    refused(*script(QA, argv)[::2], "'lr' is given twice")
    assert _no_run_folder(tmp_path)


def _with_items(world, tmp_path, edit, name="tiny-bad", raw=None):
    """A copy of the colour world's QA data whose annotation file is edited (or is `raw` bytes)."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    for f in ("img_tiny.tsv", "img_tiny.lineidx", "img_tiny.id2lineidx.pkl"):
        if not (d / f).exists():
            os.symlink(os.path.join(world, f), d / f)
    ann = json.load(open(os.path.join(world, "txt_tiny-qa.json")))
    edit(ann)
    with open(d / f"txt_{name}.json", "wb") as f:
        f.write(raw if raw is not None else json.dumps(ann).encode())
    return tiny_argv(str(d), tmp_path / "out", name, "qaoe", size_epoch=1, eval_splits=["val"])


@pytest.mark.parametrize("field, value, words", [
    ("question", ["what", "color"], ["item 1", "question must be a non-empty string, got list"]),
    ("question", "", ["item 1", "question must be a non-empty string, got str ''"]),
    ("answer_text", 7, ["item 1", "answer_text must be a non-empty string, got int 7"]),
    ("answer_text", "  ", ["item 1", "answer_text must be a non-empty string"]),
    ("video", ["video1"], ["item 1", "video must be a non-empty string"]),
], ids=["question-list", "question-empty", "answer_text-int", "answer_text-blank", "video-list"])
def test_item_fields_of_the_wrong_kind_are_refused_at_start_up(world, tmp_path, script, refused, field, value,
                                                               words):
    argv = _with_items(world, tmp_path, lambda d: d["train"][1].update({field: value}))
    refused(*script(QA, argv)[::2], "txt_tiny-bad.json['train']", *words)
    assert not (tmp_path / "out").exists() or _no_run_folder(tmp_path / "out")


def test_an_annotation_file_that_is_not_utf8(world, tmp_path, script, refused):
    text = json.dumps(json.load(open(os.path.join(world, "txt_tiny-qa.json")))).encode()
    raw = text.replace(b"what color", b"what colo\xe9r", 1)  # a Latin-1 byte
    argv = _with_items(world, tmp_path, lambda d: None, raw=raw)
    refused(*script(QA, argv)[::2], "txt_tiny-bad.json: not UTF-8", "line 1")
    d = tmp_path / "data"
    os.rename(d / "txt_tiny-bad.json", d / "txt_tiny-qa.json")
    rc, _, err = script("_tools/multi_task_vid_filter.py", ["--dataset", "tiny", "--data_root", d,
                                                            "--output_folder", tmp_path / "mt"])
    refused(rc, err, "txt_tiny-qa.json: not UTF-8")


def test_lost_items_are_counted_per_split(world, tmp_path, script):
    def edit(d):
        d["train"][0]["answer_text"] = "green circle"        # two tokens: no label
        d["train"][1]["question"] = "what " * 100000 + "?"   # cut to size_txt
        d["val"][0]["question"] = "is it " * 50 + "?"
    argv = _with_items(world, tmp_path, edit)
    rc, _, err = script(QA, argv)
    assert rc == 0, err[-3000:]
    (run_dir,) = [os.path.join(tmp_path / "out", d) for d in os.listdir(tmp_path / "out") if d.startswith("_")]
    log = json.load(open(os.path.join(run_dir, "log.json")))
    assert log["n_invalid_tr"] == [1] and log["n_truncated_tr"] == [1] and log["n_truncated_vl"] == [1]
    assert log["n_invalid_vl"] == [0]  # the evaluation's own count
    out = open(os.path.join(run_dir, "stdout.txt")).read()
    assert "['train']: 1 of 4 item(s) have a text longer than size_txt 12 allows" in out
    assert "['train']: 1 of 4 item(s) have no label" in out


def test_multi_task_filter_output_folder_is_a_file(world, tmp_path, script, refused):
    (tmp_path / "out").write_text("a file")
    rc, _, err = script("_tools/multi_task_vid_filter.py", ["--dataset", "tiny", "--data_root", world,
                                                            "--output_folder", tmp_path / "out"])
    refused(rc, err, "--output_folder", "is a file")


def test_split_parts_of_size_zero(world, tmp_path, script, refused):
    rc, _, err = script("_tools/split_tsv_parts.py", ["--input_file", os.path.join(world, "img_tiny.tsv"),
                                                      "--name", "x", "--output_dir", tmp_path, "--size_part", "0"])
    refused(rc, err, "--size_part must be >= 1")
    assert os.listdir(tmp_path) == []
