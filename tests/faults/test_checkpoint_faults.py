"""Weights files: crafted pickles run no code, unreadable files and wrong checkpoints are clear errors,
the real layouts (Kinetics .pth with a numpy 'meta', module.-prefixed LAVENDER, BERT .bin) still load."""
import argparse
import collections
import io
import logging
import os
import pickle
import random
import zipfile

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForPreTraining, BertModel

from lavender.models import build_model, load_weights
from lavender.errors import CheckpointError
from lavender.models.weights import load_torch_file
from lavender.models.factory import create_model
from tiny import TINY_MODEL, Payload

BERT = dict(TINY_MODEL["bert_config"], vocab_size=60, max_position_embeddings=32)
CFG = dict(TINY_MODEL, bert_config=BERT)
quiet = None


def tiny(**kw):
    torch.manual_seed(0)
    return build_model(dict(CFG, **kw))


def _crafted(path, marker, how):
    obj = {"state_dict": tiny().state_dict(), "x": Payload(marker)}
    if how == "zip":
        torch.save(obj, path)
    elif how == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    return path


@pytest.mark.parametrize("how", ["zip", "legacy", "plain"])
def test_crafted_checkpoint_is_refused_without_running_code(tmp_path, marker, how):
    path = _crafted(tmp_path / f"ckpt_{how}.pt", marker, how)
    with pytest.raises(CheckpointError) as err:
        load_weights(tiny(), path, log=quiet)
    msg = str(err.value)
    assert str(path) in msg and "refused" in msg and "trust_checkpoint" in msg
    if how != "plain":  # torch names the global it refused
        assert "refers to exec" in msg or "refers to builtins.exec" in msg


def test_crafted_files_through_create_model(tmp_path, marker):
    ckpt = _crafted(tmp_path / "ckpt.pt", marker, "zip")
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: refused.*trust_checkpoint"):
        create_model(dict(CFG, path_ckpt=str(ckpt)))
    bert = tmp_path / "bert-evil"
    BertModel(BertConfig(**BERT)).save_pretrained(bert)
    os.remove(bert / "model.safetensors")
    _crafted(bert / "pytorch_model.bin", marker, "zip")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: refused"):
        create_model(dict(CFG, fusion_encoder=str(bert), txt_backbone=str(bert), bert_init="pretrained"))


def test_trust_checkpoint_is_threaded_through(tmp_path):
    src = tiny()
    torch.save({"model": src.state_dict(), "args": argparse.Namespace(lr=1e-5)}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        create_model(dict(CFG, path_ckpt=str(tmp_path / "old.pt")))
    with pytest.warns(UserWarning, match="trust_checkpoint"):
        model = create_model(dict(CFG, path_ckpt=str(tmp_path / "old.pt"), trust_checkpoint=True))
    assert torch.equal(model.enc_img.norm.weight, src.enc_img.norm.weight)


def _unreadable_files(tmp_path):
    good = io.BytesIO()
    torch.save(tiny().state_dict(), good)
    files = {"notes.pt": b"hello, this is not a checkpoint\n", "empty.pt": b"",
             "cut.pt": good.getvalue()[: len(good.getvalue()) // 2], "bad.safetensors": b"\x10\x00garbage"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / n for n in files]


def test_unreadable_files_are_one_clear_error(tmp_path):
    for path in _unreadable_files(tmp_path):
        with pytest.raises(CheckpointError, match=rf"{path.name}: not a readable PyTorch checkpoint"):
            load_weights(tiny(), path, log=quiet)


def _swin_numpy1_file(path, swin_sd):
    """A Video Swin Kinetics .pth as mmcv wrote it under numpy 1 (numpy.core.* names in the pickle)."""
    sd = collections.OrderedDict(("backbone." + k, v) for k, v in swin_sd.items())
    sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"] = torch.randn(600, 8), torch.randn(600)
    meta = {"mmcv_version": "1.3.1", "time": "Tue Jun  1 10:00:00 2021", "epoch": 30, "iter": 100,
            "hook_msgs": {"best_score": np.float64(0.8), "last_ckpt": "work_dirs/x.pth"},
            "seed": np.int64(0), "CLASSES": ("abseiling", "zumba"), "hist": np.arange(4, dtype=np.float32),
            "config": "model = dict(type='Recognizer3D')", "order": collections.OrderedDict(a=1)}
    buf = io.BytesIO()
    torch.save({"meta": meta, "state_dict": sd}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info.filename, data)
    return path


def test_real_layouts_load_safely(tmp_path):
    src = tiny()
    # Video Swin Kinetics (mmcv): 'meta' with numpy values, OrderedDict state_dict, classifier ignored
    path = _swin_numpy1_file(tmp_path / "swin_tiny_k400.pth", src.enc_img.swin.state_dict())
    dst = tiny()
    rep = load_weights(dst, path, log=quiet)
    assert rep.ok and sorted(rep.ignored) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert torch.equal(dst.enc_img.swin.patch_embed.proj.weight, src.enc_img.swin.patch_embed.proj.weight)
    # LAVENDER/VIOLET: DDP 'module.'-prefixed OrderedDict
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in src.state_dict().items()),
               tmp_path / "ckpt_violet_msrvtt-retrieval_5.pt")
    assert load_weights(tiny(), tmp_path / "ckpt_violet_msrvtt-retrieval_5.pt", log=quiet).ok
    # BERT pytorch_model.bin in the pre-1.6 (non-zip) format, BertForPreTraining keys
    bert = tmp_path / "bert-base-uncased"
    hf = BertForPreTraining(BertConfig(**BERT))
    hf.save_pretrained(bert)
    os.remove(bert / "model.safetensors")
    torch.save(collections.OrderedDict(hf.state_dict()), bert / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    rep = load_weights(tiny(), bert, log=quiet)
    assert rep.ok and rep.layout == "hf_bert" and "cls.seq_relationship.weight" in rep.ignored
    # a resume-style state: python and numpy RNG states, nested containers, numpy scalars
    state = {"rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
             "log": {"ac_vl": [np.float64(0.5), 0.25]}, "epoch": 3}
    torch.save(state, tmp_path / "resume.pt")
    back = load_torch_file(tmp_path / "resume.pt")
    assert back["rng"]["python"] == state["rng"]["python"] and back["log"]["ac_vl"][0] == 0.5
    assert np.array_equal(back["rng"]["numpy"][1], state["rng"]["numpy"][1])


def test_wrong_checkpoint_is_an_error(tmp_path):
    torch.save({"roberta.embeddings.word_embeddings.weight": torch.zeros(60, 32),
                "classifier.weight": torch.zeros(2, 32)}, tmp_path / "other_model.pt")
    for strict in (True, False):  # a file that fills nothing is never accepted
        with pytest.raises(CheckpointError, match=r"other_model\.pt: none of its 2 tensors fits this model"):
            load_weights(tiny(), tmp_path / "other_model.pt", strict=strict, log=quiet)
    # another config: the fusion encoder has 2 layers, the file 1 -> partial
    torch.save(tiny().state_dict(), tmp_path / "one_layer.pt")
    cfg2 = dict(CFG, bert_config=dict(BERT, num_hidden_layers=2), path_ckpt=str(tmp_path / "one_layer.pt"))
    with pytest.raises(CheckpointError, match=r"one_layer\.pt does not fit this model: \d+ model tensor\(s\) missing"
                                              r".*ckpt_strict") as err:
        create_model(cfg2)
    assert "trsfr.layer.1.attention.self.query.weight" in str(err.value)


def test_partial_load_with_ckpt_strict_false_is_a_warning(tmp_path, caplog):
    src = tiny()
    torch.save(src.state_dict(), tmp_path / "one_layer.pt")
    cfg2 = dict(CFG, bert_config=dict(BERT, num_hidden_layers=2), path_ckpt=str(tmp_path / "one_layer.pt"),
                ckpt_strict=False)
    with caplog.at_level(logging.INFO, logger="lavender"):
        model = create_model(cfg2)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "result: PARTIAL" in warned[0].getMessage()
    assert torch.equal(model.trsfr.layer[0].output.dense.weight, src.trsfr.layer[0].output.dense.weight)


def test_expected_gaps_are_reported_as_expected(tmp_path, caplog):
    # a BertModel folder (no MLM head), as the demo's MiniLM: loads, decoder from the word embeddings
    bert = tmp_path / "minilm"
    BertModel(BertConfig(**BERT)).save_pretrained(bert)
    with caplog.at_level(logging.INFO, logger="lavender"):
        model = create_model(dict(CFG, fusion_encoder=str(bert), txt_backbone=str(bert), bert_init="pretrained"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "expected, the BERT file has no MLM head" in text and "result: OK" in text
    assert "INCOMPLETE" not in text and "MISSING" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert torch.equal(model.fc_mtm.predictions.decoder.weight, model.enc_txt.emb_txt.word_embeddings.weight)
    # a pretrained (MLM) LAVENDER checkpoint into a task-specific model: the new head is expected
    torch.save(tiny().state_dict(), tmp_path / "lavender.pt")
    rep = load_weights(tiny(head="task_specific", head_size=5), tmp_path / "lavender.pt", log=quiet)
    assert rep.ok and any("task-specific head" in r for r in rep.expected)
    assert any(k.startswith("fc_mtm.") for k in rep.ignored)
