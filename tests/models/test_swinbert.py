"""`swinbert: true` (SwinBERT-compatible visual projection) and SwinBERT checkpoints (docs/original.md#swinbert-checkpoints)."""
import pytest
import torch

from lavender.models import build_model, load_weights
from lavender.errors import CheckpointError
from lavender.models.weights import SWINBERT_RENAMES, detect_layout

TINY = {"vis_backbone_size": "tiny", "fusion_encoder": "",
        "swin_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": [2, 3, 3]},
        "bert_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                        "vocab_size": 60, "max_position_embeddings": 20},
        "max_size_frame": 3, "max_size_patch": 4}
# Keys a SwinBERT checkpoint has besides the renamed ones (all dropped, as the original does).
EXTRA = ("learn_vid_att.weight", "trans_encoder.bert.pooler.dense.weight", "swin.cls_head.fc_cls.weight",
         "trans_encoder.bert.embeddings.position_ids")


def tiny(seed, **kw):
    torch.manual_seed(seed)
    return build_model(dict(TINY, **kw))


def test_swinbert_visual_tokens():
    m = tiny(0, swinbert=True).eval()
    enc = m.enc_img
    assert enc.fc.out_features == 512 and enc.img_embedding.in_features == 512 and enc.img_embedding.out_features == 16
    names = {k for k, _ in enc.named_parameters()}
    assert not any(n.startswith(("emb_", "norm.")) for n in names)  # no pos/len embeddings, no LayerNorm
    img = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        feat, mask = m.encode_video(img)
        f = enc.swin(img.transpose(1, 2)).permute(0, 2, 3, 4, 1).flatten(2, 3)  # (B, T, h*w, C)
        proj = enc.img_embedding(enc.fc(f))
    n = 1 + 4  # fake CLS + 2x2 patches per frame
    assert feat.shape == (2, 3 * n, 16) and mask.tolist() == [[0, 1, 1, 1, 1] * 3] * 2
    feat = feat.view(2, 3, n, 16)
    assert torch.equal(feat[:, :, 0], torch.zeros(2, 3, 16))  # zero fake CLS per frame
    assert torch.allclose(feat[:, :, 1:], proj)
    with pytest.raises(ValueError, match="frame-order"):
        m.encode_video(img, odr=torch.zeros(2, 3))


def swinbert_file(model):
    """The model's weights under SwinBERT's key names (load_SwinBERT_weight inverted) + SwinBERT-only keys."""
    inv = [(b, a) for a, b in SWINBERT_RENAMES]
    sd = {}
    for k, v in model.state_dict().items():
        if k == "fc_mtm.predictions.decoder.bias":
            sd["trans_encoder.cls.predictions.decoder.bias"] = torch.full_like(v, 7.0)  # overridden by .bias
            continue
        rule = next(((a, b) for a, b in inv if k.startswith(a)), None)
        if rule is not None:
            sd[rule[1] + k[len(rule[0]):]] = v.clone()
    sd.update({k: torch.zeros(3) for k in EXTRA})
    return sd


def test_swinbert_checkpoint_loads_strictly(tmp_path):
    src, dst = tiny(1, swinbert=True), tiny(2, swinbert=True)
    sd = swinbert_file(src)
    assert detect_layout(sd) == "swinbert"
    torch.save(sd, tmp_path / "model.bin")
    lines = []
    rep = load_weights(dst, tmp_path / "model.bin", strict=True, log=lines.append)
    assert rep.layout == "swinbert" and rep.ok and rep.out_of_scope == 1  # emb_task: not in SwinBERT
    # dropped keys listed; position_ids is renamed first, then ignored as a buffer
    assert sorted(rep.ignored) == sorted(EXTRA[:3] + ("enc_txt.emb_txt.position_ids",))
    for k, v in src.state_dict().items():
        if k != "emb_task":
            assert torch.equal(dst.state_dict()[k], v), k
    # every renamed key is reported: loaded under its new name, and counted per rename
    renamed = {b + k[len(a):] for k in sd for a, b in SWINBERT_RENAMES if k.startswith(a)} - {
        "enc_txt.emb_txt.position_ids"}
    assert renamed <= set(rep.loaded)
    counts = {a: sum(k.startswith(a) for k in sd) for a, _ in SWINBERT_RENAMES}
    for a, b in SWINBERT_RENAMES:
        assert f"{a}* -> {b}* ({counts[a]} keys)" in rep.adapted
    assert "fc_mtm.predictions.decoder.bias <- fc_mtm.predictions.bias" in rep.adapted
    assert "layout: swinbert" in lines[0] and "learn_vid_att.weight" in lines[0]


def test_swinbert_checkpoint_into_plain_model_says_why(tmp_path):
    torch.save(swinbert_file(tiny(1, swinbert=True)), tmp_path / "model.bin")
    with pytest.raises(CheckpointError) as err:
        load_weights(tiny(2), tmp_path / "model.bin", strict=True, log=None)
    msg = str(err.value)
    assert "build the model with swinbert true" in msg and "enc_img.img_embedding.weight" in msg
