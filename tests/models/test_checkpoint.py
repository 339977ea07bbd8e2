"""load_weights: the three checkpoint layouts written in their real formats, reports, strictness, errors."""
import argparse
import json
import os
import warnings

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from lavender.models import build_model, load_weights
from lavender.errors import CheckpointError
from lavender.models.weights import detect_layout

BERT = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "vocab_size": 60, "max_position_embeddings": 20}
TINY = {"vis_backbone_size": "tiny", "fusion_encoder": "",
        "swin_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": [2, 3, 3]},
        "bert_config": BERT, "max_size_frame": 3, "max_size_patch": 4}
quiet = None  # log=None: no printing in tests


def tiny(**kw):
    torch.manual_seed(len(kw))
    return build_model(dict(TINY, **kw))


def same(a, b):
    return torch.equal(a.detach().cpu(), b.detach().cpu())


@pytest.mark.parametrize("wrap", ["flat", "module", "model", "state_dict"])
def test_lavender_layouts(tmp_path, wrap):
    src, dst = tiny(), tiny(head="mlm", max_size_patch=4)
    sd = src.state_dict()
    sd["enc_txt.emb_txt.position_ids"] = torch.arange(20)[None]  # saved by transformers < 4.31
    obj = {"flat": sd, "module": {"module." + k: v for k, v in sd.items()},
           "model": {"model": sd, "epoch": 3, "optimizer": {"state": {}}}, "state_dict": {"state_dict": sd}}[wrap]
    torch.save(obj, tmp_path / "ckpt_violet_best.pt")
    rep = load_weights(dst, tmp_path / "ckpt_violet_best.pt", strict=True, log=quiet)
    assert rep.layout == "lavender" and rep.ok and rep.out_of_scope == 0
    assert "enc_txt.emb_txt.position_ids" in rep.ignored
    for k, v in src.state_dict().items():
        assert same(dst.state_dict()[k], v), k
    assert dst.fc_mtm.predictions.decoder.bias is dst.fc_mtm.predictions.bias


def test_strict_reports_mismatch_missing_unexpected(tmp_path):
    src = tiny()
    sd = src.state_dict()
    sd["trsfr.layer.0.output.dense.bias"] = torch.zeros(17)
    sd["extra_layer.weight"] = torch.zeros(2)
    del sd["enc_img.norm.weight"]
    torch.save(sd, tmp_path / "bad.pt")
    dst = tiny()
    before = dst.trsfr.layer[0].attention.self.query.weight.detach().clone()
    with pytest.raises(CheckpointError) as err:
        load_weights(dst, tmp_path / "bad.pt", log=quiet)  # strict by default
    msg = str(err.value)
    assert "SHAPE MISMATCHED" in msg and "trsfr.layer.0.output.dense.bias: (17,) vs (16,)" in msg
    assert "extra_layer.weight" in msg and "enc_img.norm.weight" in msg and "ckpt_strict" in msg
    assert same(dst.trsfr.layer[0].attention.self.query.weight, before)  # refused before touching the model
    lines, warned = [], []
    rep = load_weights(dst, tmp_path / "bad.pt", strict=False, log=lines.append, warn=warned.append)
    assert rep.missing == ["enc_img.norm.weight"] and rep.unexpected == ["extra_layer.weight"]
    assert len(rep.mismatched) == 1 and not lines and "result: PARTIAL" in warned[0]
    assert same(dst.trsfr.layer[0].attention.self.query.weight, src.trsfr.layer[0].attention.self.query.weight)


def test_emb_pos_and_emb_len_are_resized(tmp_path):
    src = tiny(max_size_patch=3, max_size_frame=2)
    torch.save(src.state_dict(), tmp_path / "small.pt")
    dst = tiny(max_size_patch=5, max_size_frame=6)
    before = dst.enc_img.emb_pos.detach().clone()
    rep = load_weights(dst, tmp_path / "small.pt", strict=True, log=quiet)
    assert len(rep.adapted) == 2 and rep.ok
    assert same(dst.enc_img.emb_pos[:, :, :10], src.enc_img.emb_pos)
    assert same(dst.enc_img.emb_pos[:, :, 10:], before[:, :, 10:])
    assert same(dst.enc_img.emb_len[:, :2], src.enc_img.emb_len)
    # And back: a larger table is sliced.
    torch.save(dst.state_dict(), tmp_path / "big.pt")
    rep = load_weights(src, tmp_path / "big.pt", strict=True, log=quiet)
    assert same(src.enc_img.emb_pos, dst.enc_img.emb_pos[:, :, :10])


def _kinetics_file(path, swin_sd):
    sd = {"backbone." + k: v for k, v in swin_sd.items()}
    sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"] = torch.randn(600, 64), torch.randn(600)
    torch.save({"meta": {"epoch": 30, "mmaction_version": "0.x"}, "state_dict": sd}, path)


def test_video_swin_kinetics_layout(tmp_path):
    src = tiny()
    _kinetics_file(tmp_path / "swin_tiny_k400.pth", src.enc_img.swin.state_dict())
    dst = tiny()
    rep = load_weights(dst, tmp_path / "swin_tiny_k400.pth", strict=True, log=quiet)
    assert rep.layout == "video_swin" and rep.ok and not rep.missing and not rep.unexpected
    assert sorted(rep.ignored) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert rep.out_of_scope > 0 and len(rep.loaded) == len(src.enc_img.swin.state_dict())
    for k, v in src.enc_img.swin.state_dict().items():
        assert same(dst.enc_img.swin.state_dict()[k], v), k


def test_video_swin_other_window_and_temporal_kernel(tmp_path):
    src = tiny(swin_config=dict(TINY["swin_config"], window_size=[2, 2, 2], patch_size=[1, 4, 4]))
    _kinetics_file(tmp_path / "swin.pth", src.enc_img.swin.state_dict())
    dst = tiny()
    rep = load_weights(dst, tmp_path / "swin.pth", strict=True, log=quiet)
    assert rep.ok and any("interpolated" in a for a in rep.adapted) and any("inflated" in a for a in rep.adapted)
    w_src, w_dst = src.enc_img.swin.patch_embed.proj.weight, dst.enc_img.swin.patch_embed.proj.weight
    assert w_dst.shape[2] == 2 and torch.allclose(w_dst.sum(2, keepdim=True), w_src, atol=1e-6)
    assert dst.enc_img.swin.layers[0].blocks[0].attn.relative_position_bias_table.shape[0] == 3 * 5 * 5


def _bert_dir(path, model, cfg):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f)
    return path


def test_hf_bert_safetensors_dir(tmp_path):
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(**BERT))
    hf.save_pretrained(tmp_path / "bert-mini")
    assert (tmp_path / "bert-mini" / "model.safetensors").exists()
    dst = tiny()
    rep = load_weights(dst, tmp_path / "bert-mini", strict=True, log=quiet)
    assert rep.layout == "hf_bert" and rep.ok and not rep.unexpected and not rep.missing
    assert same(dst.enc_txt.emb_txt.word_embeddings.weight, hf.bert.embeddings.word_embeddings.weight)
    assert same(dst.trsfr.layer[0].output.dense.weight, hf.bert.encoder.layer[0].output.dense.weight)
    assert same(dst.fc_mtm.predictions.transform.dense.weight, hf.cls.predictions.transform.dense.weight)
    # The file stores the tied decoder only as the word embeddings: filled from there, then untied.
    assert same(dst.fc_mtm.predictions.decoder.weight, hf.bert.embeddings.word_embeddings.weight)
    assert dst.fc_mtm.predictions.decoder.weight is not dst.enc_txt.emb_txt.word_embeddings.weight
    assert same(dst.fc_mtm.predictions.decoder.bias, hf.cls.predictions.bias)


def test_hf_bert_legacy_bin_gamma_beta(tmp_path):
    torch.manual_seed(0)
    cfg = BertConfig(**BERT)
    hf = BertForMaskedLM(cfg)
    sd = {}
    for k, v in hf.state_dict().items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        if k != "cls.predictions.decoder.weight":
            sd[k] = v
    sd["bert.embeddings.position_ids"] = torch.arange(20)[None]
    sd["bert.pooler.dense.weight"] = torch.zeros(16, 16)
    sd["cls.seq_relationship.weight"] = torch.zeros(2, 16)
    d = _bert_dir(tmp_path / "bert-base-uncased", hf, cfg)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    dst = tiny()
    rep = load_weights(dst, d, strict=True, log=quiet)
    assert rep.ok and len(rep.ignored) == 3
    assert same(dst.enc_txt.emb_txt.LayerNorm.weight, hf.bert.embeddings.LayerNorm.weight)
    assert same(dst.fc_mtm.predictions.transform.LayerNorm.bias, hf.cls.predictions.transform.LayerNorm.bias)


def test_hf_bert_model_without_head(tmp_path):
    torch.manual_seed(0)
    hf = BertModel(BertConfig(**BERT))
    hf.save_pretrained(tmp_path / "minilm")
    dst = tiny()
    lines = []
    rep = load_weights(dst, tmp_path / "minilm", log=lines.append)  # strict: the missing head is expected
    assert rep.layout == "hf_bert" and rep.ok and not rep.unexpected and not rep.missing
    (reason, keys), = rep.expected.items()
    assert "no MLM head" in reason and keys and all(k.startswith("fc_mtm.") for k in keys)  # reported, not silent
    assert "result: OK" in lines[0] and "INCOMPLETE" not in lines[0] and "MISSING" not in lines[0]
    assert same(dst.trsfr.layer[0].attention.self.key.weight, hf.encoder.layer[0].attention.self.key.weight)
    assert same(dst.fc_mtm.predictions.decoder.weight, hf.embeddings.word_embeddings.weight)
    assert any("no MLM head in the file" in a for a in rep.adapted)


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"_models.video_swin_transformer.swin_base_patch244"):
        load_weights(tiny(), tmp_path / "swin_base_patch244_window877_kinetics600_22k.pth", log=quiet)
    with pytest.raises(FileNotFoundError, match=r"_models.bert-base-uncased"):
        load_weights(tiny(), tmp_path / "bert-base-uncased", log=quiet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_weights(tiny(), tmp_path / "empty", log=quiet)


def test_full_pickle_needs_trust(tmp_path):
    src = tiny()
    torch.save({"model": src.state_dict(), "args": argparse.Namespace(lr=1e-5)}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old\.pt: refused .*argparse\.Namespace.*trust_checkpoint"):
        load_weights(tiny(), tmp_path / "old.pt", log=quiet)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = load_weights(tiny(), tmp_path / "old.pt", trust=True, log=quiet)
    assert rep.ok and any("trust_checkpoint" in str(w.message) for w in caught)


def test_detect_layout():
    assert detect_layout(["backbone.patch_embed.proj.weight"]) == "video_swin"
    assert detect_layout(["layers.0.blocks.0.attn.qkv.weight", "head.weight"]) == "video_swin"
    assert detect_layout(["embeddings.word_embeddings.weight"]) == "hf_bert"
    assert detect_layout(["enc_img.swin.layers.0.blocks.0.attn.qkv.weight", "trsfr.layer.0.x"]) == "lavender"
