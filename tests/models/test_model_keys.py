"""Model structure (every key and shape of the original, on the meta device) and the model's method contract."""
import json
import os

import pytest
import torch

from lavender.models import Lavender, ModelConfig, build_model
from lavender.models.lavender import TASK_TOK2ID

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")

TINY = {"vis_backbone_size": "tiny", "fusion_encoder": "", "txt_backbone": "",
        "swin_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": [2, 3, 3]},
        "bert_config": {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                        "intermediate_size": 32, "vocab_size": 50, "max_position_embeddings": 24},
        "max_size_frame": 3, "max_size_patch": 4}


def test_full_size_keys_and_shapes_match_original():
    inv = json.load(open(os.path.join(DATA, "keys_full.json")))
    with torch.device("meta"):
        model = build_model({"vis_backbone_size": "base", "use_checkpoint": True, "size_img": 224})
    want = [(k, tuple(s)) for k, s, _ in inv["entries"] if not k.endswith("position_ids")]
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == want  # same keys, same shapes, same order
    assert sum(p.numel() for p in model.parameters()) == inv["total_params"]
    head = model.fc_mtm.predictions
    assert head.decoder.bias is head.bias
    assert head.decoder.weight is not model.enc_txt.emb_txt.word_embeddings.weight


def test_task_specific_head_keys():
    with torch.device("meta"):
        model = build_model(dict(TINY, head="task_specific", head_size=5))
    keys = list(model.state_dict())
    assert not any(k.startswith(("fc_mtm.", "emb_task")) for k in keys)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("fc.")}
    assert shapes == {"fc.1.weight": (32, 16), "fc.1.bias": (32,), "fc.3.weight": (5, 32), "fc.3.bias": (5,)}


def test_projection_only_when_widths_differ():
    same = dict(TINY, bert_config=dict(TINY["bert_config"], hidden_size=64))  # swin out = 8 * 8 = 64
    with torch.device("meta"):
        assert build_model(same).enc_img.fc is None
        assert build_model(TINY).enc_img.fc is not None


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def test_contract_shapes(tiny):
    B, T = 2, 2
    img = torch.randn(B, T, 3, 64, 64)
    txt = torch.randint(5, 50, (B, 7))
    mask = torch.ones_like(txt)
    with torch.no_grad():
        feat, m = tiny.encode_video(img)
        assert feat.shape == (B, T * (1 + 4), 16) and m.dtype == torch.long and m.shape == feat.shape[:2]
        emb = tiny.embed_text(txt)
        assert emb.shape == (B, 7, 16)
        pre = tiny.pretext(B, task_token="oe")
        assert pre[0].shape == (B, 1, 16) and torch.equal(pre[0][1, 0], tiny.emb_task[TASK_TOK2ID["oe"]])
        assert tiny.pretext(B) is None
        ppre = tiny.pretext(B, prompt_ids=torch.tensor([2, 9, 9, 3]))
        assert ppre[0].shape == (B, 4, 16) and ppre[1].shape == (B, 4)
        hid = tiny.fuse(feat, m, emb, mask, pretext=pre)
        assert hid.shape == (B, 8, 16)
        assert tiny.mlm(hid).shape == (B, 8, 50)
        assert tiny.fuse(feat, m, emb, mask, return_all=True).shape == (B, 10 + 7, 16)
        out = tiny(img, txt, mask, prompt_ids=torch.tensor([2, 9, 3]), prompt_mask=torch.tensor([1, 1, 1]))
        assert out.shape == (B, 3 + 7, 50)
    with pytest.raises(ValueError):
        tiny.pretext(B, task_token="oe", prompt_ids=torch.tensor([1]))


def test_padding_is_ignored_and_seq2seq_is_causal(tiny):
    torch.manual_seed(1)
    img = torch.randn(1, 1, 3, 32, 32)
    txt = torch.randint(5, 50, (1, 6))
    with torch.no_grad():
        feat, m = tiny.encode_video(img)
        emb = tiny.embed_text(txt)
        full = tiny.fuse(feat, m, emb, torch.tensor([[1, 1, 1, 1, 0, 0]]))
        other = emb.clone()
        other[:, 4:] += 1.0  # change only padded positions
        full2 = tiny.fuse(feat, m, other, torch.tensor([[1, 1, 1, 1, 0, 0]]))
        assert torch.allclose(full[:, :4], full2[:, :4], atol=1e-6)
        ones = torch.ones(1, 6, dtype=torch.long)
        s1 = tiny.fuse(feat, m, emb, ones, attn="seq2seq")
        other = emb.clone()
        other[:, 3:] += 1.0  # change the future of position 2
        s2 = tiny.fuse(feat, m, other, ones, attn="seq2seq")
        assert torch.allclose(s1[:, :3], s2[:, :3], atol=1e-6) and not torch.allclose(s1[:, 3:], s2[:, 3:])
        # Visual rows never see text: the visual part is the same for any text.
        v1 = tiny.fuse(feat, m, emb, ones, attn="seq2seq", return_all=True)[:, :feat.shape[1]]
        v2 = tiny.fuse(feat, m, other, ones, attn="seq2seq", return_all=True)[:, :feat.shape[1]]
        assert torch.allclose(v1, v2, atol=1e-6)


def test_sdpa_matches_eager(tiny):
    img, txt = torch.randn(2, 2, 3, 32, 32), torch.randint(5, 50, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = tiny(img, txt, mask, task_token="vtm")
        tiny.set_attn_implementation("eager")
        b = tiny(img, txt, mask, task_token="vtm")
        tiny.set_attn_implementation("sdpa")
    assert torch.allclose(a, b, atol=1e-5)


def test_task_specific_forward_and_config_roundtrip():
    torch.manual_seed(0)
    model = build_model(dict(TINY, head="task_specific", head_size=3)).eval()
    out = model(torch.randn(2, 1, 3, 32, 32), torch.randint(5, 50, (2, 4)), torch.ones(2, 4, dtype=torch.long))
    assert out.shape == (2, 3)
    cfg = ModelConfig.from_dict(model.cfg.to_dict())
    assert cfg == model.cfg and isinstance(Lavender(cfg), Lavender)


def test_too_many_frames_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="max_size_frame"):
        tiny.encode_video(torch.randn(1, 4, 3, 32, 32))
