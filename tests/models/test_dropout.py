"""The fast CPU dropout (lavender/models/dropout.py): its mask's distribution, the values and gradients it
produces, the fusion attention that uses it, and that the model uses it with unchanged state-dict keys."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lavender.models import build_model
from lavender.models.dropout import (FUSION_SDPA, Dropout, fast_dropout, fusion_sdpa, keep_mask,
                                     set_fast_dropout)
from tiny import TINY_MODEL


def test_keep_mask_is_unbiased_in_every_16_bit_lane():
    keep, q = keep_mask((1 << 20,), 0.1, generator=torch.Generator().manual_seed(0))
    assert q == round(0.1 * 65536) / 65536 and abs(q - 0.1) < 2 ** -17
    # 16 bits of each 64-bit draw per element: lane i % 4. The top lane would keep everything if the
    # draw's sign bit were not random (torch's random_() without bounds leaves it 0).
    for lane in range(4):
        assert keep.view(-1, 4)[:, lane].float().mean().item() == pytest.approx(1 - q, abs=0.003)
    assert keep.float().mean().item() == pytest.approx(1 - q, abs=0.0015)  # binomial sd ~0.0003


def test_keep_mask_follows_the_seed():
    a, _ = keep_mask((3, 50), 0.3, generator=torch.Generator().manual_seed(7))
    b, _ = keep_mask((3, 50), 0.3, generator=torch.Generator().manual_seed(7))
    c, _ = keep_mask((3, 50), 0.3, generator=torch.Generator().manual_seed(8))
    assert a.shape == (3, 50) and torch.equal(a, b) and not torch.equal(a, c)


def test_values_and_gradient():
    x = (torch.rand(64, 257) + 0.5).requires_grad_()  # odd size: the last draw is partly used
    torch.manual_seed(3)
    y = fast_dropout(x, 0.25)
    torch.manual_seed(3)
    keep, q = keep_mask(x.shape, 0.25)
    scale = 1 / (1 - q)
    assert torch.allclose(y, x * keep * scale)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.allclose(x.grad, g * keep * scale)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.02)  # kept values scaled: unbiased


def test_identity_where_dropout_does_nothing():
    x = torch.randn(4, 9)
    assert fast_dropout(x, 0.5, training=False) is x
    assert torch.equal(fast_dropout(x, 0.0), x)
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    d = Dropout(0.5).eval()
    assert torch.equal(d(x), x)


def test_switching_back_to_torch_dropout():
    x = torch.randn(1000)
    set_fast_dropout(False)
    try:
        torch.manual_seed(0)
        a = fast_dropout(x, 0.2)
        torch.manual_seed(0)
        assert torch.equal(a, F.dropout(x, 0.2))
    finally:
        set_fast_dropout(True)


def _qkv(B=2, H=3, L=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, d, generator=g) for _ in range(3))
    mask = torch.zeros(B, 1, 1, L)
    mask[1, ..., -2:] = torch.finfo(torch.float32).min  # padding of the second sample
    return q, k, v, mask


def test_fusion_attention_with_dropout_is_the_written_out_formula():
    q, k, v, mask = _qkv()
    module = nn.Module().train()
    torch.manual_seed(5)
    out, _ = fusion_sdpa(module, q, k, v, mask, dropout=0.1, scaling=0.3)
    torch.manual_seed(5)
    probs = torch.softmax(q @ k.transpose(-2, -1) * 0.3 + mask, -1)
    keep, pq = keep_mask(probs.shape, 0.1)
    want = (torch.where(keep, probs, 0.0) / (1 - pq)) @ v
    assert out.shape == (2, 7, 3, 8)  # (B, L, heads, d) as transformers' attention functions return
    assert torch.allclose(out, want.transpose(1, 2), atol=1e-5)


def test_fusion_attention_without_dropout_is_sdpa():
    q, k, v, mask = _qkv()
    module = nn.Module().eval()
    module.is_causal = False
    out, _ = fusion_sdpa(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    assert torch.allclose(out, want.transpose(1, 2), atol=1e-6)


def test_model_uses_it_with_unchanged_keys():
    model = build_model(dict(TINY_MODEL, fusion_encoder="", txt_backbone=""))
    assert not [n for n, m in model.named_modules() if type(m) is nn.Dropout]
    assert any(isinstance(m, Dropout) and m.p > 0 for m in model.modules())
    assert model.bert_config._attn_implementation == FUSION_SDPA
    assert not [k for k in model.state_dict() if "drop" in k]
    model.set_attn_implementation("eager")
    assert model.bert_config._attn_implementation == "eager" and model.cfg.attn_implementation == "eager"
    with pytest.raises(ValueError, match="attn_implementation"):
        model.set_attn_implementation("flash")
