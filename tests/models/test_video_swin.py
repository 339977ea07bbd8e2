"""Video Swin 3D: shapes for odd sizes, images (T=1), window clamping, activation checkpointing."""
import pytest
import torch

from lavender.models.video_swin import (SWIN_SETTINGS, SwinConfig, SwinTransformer3D, compute_mask,
                                        get_window_size, relative_position_index)


def tiny(**kw):
    base = dict(embed_dim=8, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4), window_size=(2, 3, 3),
                drop_path_rate=0.0)
    base.update(kw)
    return SwinConfig(**base)


@pytest.mark.parametrize("T,H,W", [(1, 32, 32), (3, 50, 70), (5, 17, 23), (2, 64, 40)])
def test_output_shapes(T, H, W):
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny()).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, T, H, W))
    h, w = -(-H // 4), -(-W // 4)  # patch embedding pads to a multiple of 4
    for _ in range(3):             # each PatchMerging pads odd sizes by one
        h, w = -(-h // 2), -(-w // 2)
    assert y.shape == (2, 8 * 8, T, h, w)  # time is never downsampled
    assert torch.isfinite(y).all()


def test_patch_embed_keeps_time():
    m = SwinTransformer3D(tiny())
    x = torch.randn(1, 3, 4, 16, 16)
    assert m.patch_embed(x).shape == (1, 8, 4, 4, 4)
    # One zero frame is appended: the last temporal token sees frame T-1 and zeros only.
    w = m.patch_embed.proj.weight
    last = torch.einsum("octij,ctij->o", w[:, :, :1], x[0, :, -1:, :4, :4]) + m.patch_embed.proj.bias
    assert torch.allclose(m.patch_embed.proj(torch.nn.functional.pad(x, (0, 0, 0, 0, 0, 1)))[0, :, -1, 0, 0], last,
                          atol=1e-5)


def test_window_clamping_and_mask():
    assert get_window_size((2, 16, 16), (8, 7, 7), (4, 3, 3)) == ((2, 7, 7), (0, 3, 3))
    assert get_window_size((4, 2, 2), (2, 7, 7), (1, 3, 3)) == ((2, 2, 2), (1, 0, 0))
    mask = compute_mask(2, 21, 21, (2, 7, 7), (0, 3, 3), "cpu")
    assert mask.shape == (9, 98, 98)
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert (mask[0] == 0).all()  # the top-left window holds a single region
    idx = relative_position_index((2, 7, 7))
    assert idx.shape == (98, 98) and idx.max() == 3 * 13 * 13 - 1 and (idx.diagonal() == idx[0, 0]).all()


def test_settings_table():
    assert SWIN_SETTINGS["base"] == dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
    cfg = SwinConfig.from_size("large", {"depths": [2, 2, 2, 2]})
    assert cfg.embed_dim == 192 and cfg.depths == (2, 2, 2, 2) and cfg.window_size == (8, 7, 7)
    with pytest.raises(KeyError):
        SwinConfig.from_size("tiny", {"embed": 3})
    with pytest.raises(ValueError):
        SwinConfig.from_size("huge")


def test_use_checkpoint_same_output_and_grads():
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny()).train()
    x = torch.randn(2, 3, 2, 24, 24)
    outs, grads = [], []
    for flag in (False, True):
        m.set_use_checkpoint(flag)
        m.zero_grad()
        y = m(x)
        y.square().mean().backward()
        outs.append(y.detach())
        grads.append(m.layers[0].blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny(drop_path_rate=0.5))
    x = torch.randn(1, 3, 1, 16, 16)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))
