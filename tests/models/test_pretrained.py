"""Starting weights (docs/weights.md#where-a-runs-weights-come-from): path_ckpt on top of the pretrained initialisation, where each tensor came
from, fusion_encoder_rand_init, reinit_head, the text's own encoder, and the 2D ImageNet Swin inflation."""
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM

from lavender.errors import ConfigError
from lavender.models import build_model, factory as pretrained, load_weights
from lavender.models.factory import RANDOM, create_model, load_starting_weights
from tiny import TINY_MODEL, lavender_log

BERT = dict(TINY_MODEL["bert_config"], vocab_size=60, max_position_embeddings=32)
CFG = dict(TINY_MODEL, bert_config=BERT)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A BertForMaskedLM folder (the role of _models/bert-base-uncased/)."""
    torch.manual_seed(1)
    hf = BertForMaskedLM(BertConfig(**BERT))
    path = tmp_path_factory.mktemp("bert") / "bert-tiny"
    hf.save_pretrained(path)
    return str(path), hf


def same(a, b):
    return torch.equal(a.detach().float(), b.detach().float())


def test_path_ckpt_loads_on_top_of_the_pretrained_bert(tmp_path, bert):
    folder, hf = bert
    torch.manual_seed(2)
    sd = build_model(CFG).state_dict()
    partial = {k: v for k, v in sd.items() if not k.startswith("fc_mtm.")}  # a file without the MLM head
    torch.save(partial, tmp_path / "ckpt.pt")
    cfg = dict(CFG, txt_backbone=folder, fusion_encoder=folder, bert_init="pretrained",
               vis_backbone_init="3d", path_ckpt=str(tmp_path / "ckpt.pt"))  # no Kinetics file: not needed
    with pytest.raises(Exception, match="ckpt_strict"):
        create_model(cfg)  # a partial file is still an error by default
    model = build_model(cfg)
    with lavender_log() as records:
        sources = load_starting_weights(model, dict(cfg, ckpt_strict=False))
    # missing from the file: the pretrained MLM head, not random values
    assert same(model.fc_mtm.predictions.transform.dense.weight, hf.cls.predictions.transform.dense.weight)
    assert sources["fc_mtm.predictions.transform.dense.weight"] == folder
    # in the file: the file's values on top of BERT's
    assert same(model.trsfr.layer[0].output.dense.weight, sd["trsfr.layer.0.output.dense.weight"])
    assert sources["trsfr.layer.0.output.dense.weight"] == "path_ckpt ckpt.pt"
    assert sources["enc_img.swin.patch_embed.proj.weight"] == "path_ckpt ckpt.pt"
    text = "\n".join(r.getMessage() for r in records)
    assert "vis_backbone_init 3d not used" in text
    summary = pretrained.describe_sources(sources)
    assert "path_ckpt ckpt.pt:" in summary and "bert-tiny" in summary


def test_fusion_encoder_rand_init_keeps_embeddings_and_head(bert):
    folder, hf = bert
    torch.manual_seed(3)
    model = build_model(CFG)
    before = model.trsfr.layer[0].output.dense.weight.detach().clone()
    cfg = dict(CFG, fusion_encoder=folder, txt_backbone=folder, bert_init="pretrained", fusion_encoder_rand_init=True)
    sources = load_starting_weights(model, cfg)
    assert same(model.enc_txt.emb_txt.word_embeddings.weight, hf.bert.embeddings.word_embeddings.weight)
    assert same(model.fc_mtm.predictions.transform.dense.weight, hf.cls.predictions.transform.dense.weight)
    assert same(model.trsfr.layer[0].output.dense.weight, before)          # random, not BERT's
    assert not same(model.trsfr.layer[0].output.dense.weight, hf.bert.encoder.layer[0].output.dense.weight)
    assert sources["trsfr.layer.0.output.dense.weight"] == RANDOM
    # bert_init random: nothing from the folder
    model = build_model(CFG)
    sources = load_starting_weights(model, dict(cfg, bert_init="random"))
    assert set(sources.values()) == {RANDOM}


def test_reinit_head(tmp_path):
    torch.manual_seed(4)
    src = build_model(dict(CFG, head="task_specific", head_size=3))
    torch.save(src.state_dict(), tmp_path / "qa3.pt")
    cfg = dict(CFG, path_ckpt=str(tmp_path / "qa3.pt"))
    same_size = create_model(cfg, heads={"fc": 3})
    assert same(same_size.fc[3].weight, src.fc[3].weight)  # without reinit_head: the file's head
    model = create_model(dict(cfg, reinit_head=True), heads={"fc": 5})  # another size: re-created
    assert model.fc[3].weight.shape[0] == 5
    assert same(model.trsfr.layer[0].output.dense.weight, src.trsfr.layer[0].output.dense.weight)
    again = create_model(dict(cfg, reinit_head=True), heads={"fc": 3})
    assert not same(again.fc[3].weight, src.fc[3].weight)  # fresh weights even when the sizes agree
    with pytest.raises(ConfigError, match="only the MLM head"):
        create_model(dict(cfg, reinit_head=True))


def test_text_encoder_when_not_embed_only(bert):
    folder, hf = bert
    cfg = dict(CFG, txt_backbone_embed_only=False, fusion_encoder=folder, txt_backbone=folder,
               bert_init="pretrained")
    model = create_model(cfg)
    keys = model.state_dict().keys()
    assert "enc_txt.txt_trsfr.layer.0.attention.self.query.weight" in keys  # the original's EncTxt.txt_trsfr
    assert same(model.enc_txt.txt_trsfr.layer[0].output.dense.weight, hf.bert.encoder.layer[0].output.dense.weight)
    model.eval()
    txt = torch.tensor([[2, 7, 9, 3, 0, 0]])
    emb_only = model.enc_txt.emb_txt(txt)
    out = model.embed_text(txt, (txt != 0).long())
    assert out.shape == emb_only.shape and not torch.allclose(out, emb_only)
    # padding is masked: changing a padded id does not change the real tokens' states
    out2 = model.embed_text(torch.tensor([[2, 7, 9, 3, 5, 0]]), (txt != 0).long())
    assert torch.allclose(out[:, :4], out2[:, :4], atol=1e-6)
    assert "enc_txt.txt_trsfr." not in "".join(build_model(CFG).state_dict())  # embed only: no such keys


def _swin2d_file(path, model, window):
    """A 2D ImageNet Swin checkpoint (['model'], 4-D patch kernel, 2D bias tables of `window`, a classifier
    and cached attention masks) with the tiny model's Swin values."""
    sd = {}
    for k, v in model.enc_img.swin.state_dict().items():
        if k.endswith("relative_position_index"):
            continue
        if k == "patch_embed.proj.weight":
            v = v[:, :, 0]
        if k.endswith("relative_position_bias_table"):
            v = torch.randn((2 * window - 1) ** 2, v.shape[1])
        sd[k] = v
    sd["head.weight"], sd["head.bias"] = torch.randn(10, sd["norm.weight"].shape[0]), torch.randn(10)
    sd["layers.0.blocks.0.attn_mask"] = torch.zeros(4, 49, 49)
    torch.save({"model": sd, "optimizer": {}}, path)
    return sd


@pytest.mark.parametrize("window", [7, 5])
def test_vis_backbone_init_2d_inflates_imagenet_swin(tmp_path, monkeypatch, window):
    torch.manual_seed(5)
    model = build_model(CFG)
    sd = _swin2d_file(tmp_path / "swin2d.pth", model, window)
    monkeypatch.setattr(pretrained, "swin2d_ckpt", lambda size, *_: str(tmp_path / "swin2d.pth"))
    with lavender_log() as records:
        model = create_model(dict(CFG, vis_backbone_init="2d"))  # strict: the 2D file fills Video Swin
    swin = model.enc_img.swin
    kt = swin.patch_embed.proj.weight.shape[2]
    for t in range(kt):  # the patch kernel repeated over time, divided by its length
        assert torch.allclose(swin.patch_embed.proj.weight[:, :, t], sd["patch_embed.proj.weight"] / kt)
    table = swin.layers[0].blocks[0].attn.relative_position_bias_table.detach()
    wd, wh, ww = swin.layers[0].blocks[0].attn.window_size
    per_t = (2 * wh - 1) * (2 * ww - 1)
    src = sd["layers.0.blocks.0.attn.relative_position_bias_table"]
    if window == wh:  # same spatial window: the 2D table tiled 2*wd-1 times
        want = src
    else:  # bicubic-resized in space first
        grid = src.t().reshape(1, -1, 2 * window - 1, 2 * window - 1)
        want = F.interpolate(grid, size=(2 * wh - 1, 2 * ww - 1), mode="bicubic").reshape(src.shape[1], -1).t()
    assert table.shape[0] == (2 * wd - 1) * per_t
    for d in range(2 * wd - 1):
        assert torch.allclose(table[d * per_t:(d + 1) * per_t], want, atol=1e-6)
    text = "\n".join(r.getMessage() for r in records)
    assert "ImageNet 2D Swin, inflated to 3D" in text and "resized and tiled" in text


def test_default_vis_backbone_init_2d_names_its_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"swin_transformer.swin_tiny_patch4_window7_224\.pth"):
        create_model(dict(CFG, vis_backbone_init="2d"))
    rep_model = build_model(CFG)
    with pytest.raises(FileNotFoundError):
        load_weights(rep_model, tmp_path / "swin_base_patch4_window7_224_22k.pth", log=None)
