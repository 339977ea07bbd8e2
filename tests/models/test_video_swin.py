"""Video Swin 3D: shapes for odd sizes, images (T=1), window clamping, activation checkpointing, the
window gather and the attention paths against the textbook formula."""
import pytest
import torch

from lavender.models.video_swin import (SWIN_SETTINGS, DropPath, SwinConfig, SwinTransformer3D, WindowAttention3D,
                                        _TokenGather, compute_mask, get_window_size, relative_position_index,
                                        window_order, window_partition)


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


def _backward_ops(m, x):
    """Output, every parameter's gradient, and how often each aten op ran during the backward pass."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    seen = Counter()
    m.zero_grad()
    torch.manual_seed(1)  # the same drop-path draws for every setting
    y = m(x)
    with Count():
        y.square().mean().backward()
    return y.detach(), [p.grad.clone() for p in m.parameters()], seen


def test_checkpoint_keep_saves_the_chosen_products_and_changes_no_number():
    """checkpoint_keep: a checkpointed block keeps the outputs of its linear layers (and attention's products)
    instead of recomputing them; output and gradients equal those without checkpointing."""
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny(drop_path_rate=0.3)).train()
    x = torch.randn(2, 3, 2, 24, 24)
    m.set_use_checkpoint(False)
    y0, g0, plain = _backward_ops(m, x)
    m.set_use_checkpoint(True)
    runs = {}
    for keep in ("none", "linear", "matmul"):
        m.set_checkpoint_keep(keep)
        y, g, runs[keep] = _backward_ops(m, x)
        assert torch.equal(y, y0)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g, g0)), keep
    linear = lambda c: c["mm"] + c["addmm"]  # noqa: E731
    assert linear(runs["none"]) > linear(plain) and runs["none"]["bmm"] > plain["bmm"]  # the forward again
    assert linear(runs["linear"]) == linear(plain) and runs["linear"]["bmm"] == runs["none"]["bmm"]
    assert linear(runs["matmul"]) == linear(plain) and runs["matmul"]["bmm"] == plain["bmm"]
    with pytest.raises(ValueError, match="checkpoint_keep 'all'"):
        m.set_checkpoint_keep("all")


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny(drop_path_rate=0.5))
    x = torch.randn(1, 3, 1, 16, 16)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


def test_drop_path_residual():
    """`residual(x, y)` is x + DropPath(y) for the same draws: whole samples dropped or scaled by 1/keep."""
    dp = DropPath(0.5).train()
    x, y = torch.randn(64, 3, 2), torch.randn(64, 3, 2)
    torch.manual_seed(1)
    got = dp.residual(x, y)
    torch.manual_seed(1)
    assert torch.allclose(got, x + dp(y))
    kept = ~torch.isclose(got, x).all(-1).all(-1)
    assert 10 < kept.sum() < 54 and torch.allclose(got[kept], x[kept] + 2 * y[kept])
    assert torch.equal(dp.eval().residual(x, y), x + y)


@pytest.mark.parametrize("size,ws,ss", [((2, 14, 14), (2, 7, 7), (1, 3, 3)), ((3, 6, 9), (3, 3, 3), (0, 1, 1))])
def test_window_order_is_roll_then_partition(size, ws, ss):
    """One gather does torch.roll + window_partition; the inverse gather (also the backward) undoes it."""
    D, H, W = size
    x = torch.randn(2, D, H, W, 5, dtype=torch.float64, requires_grad=True)
    order, inverse = window_order(D, H, W, ws, ss, "cpu")
    want = window_partition(torch.roll(x, shifts=tuple(-s for s in ss), dims=(1, 2, 3)), ws).reshape(2, -1, 5)
    got = _TokenGather.apply(x.reshape(2, -1, 5), order, inverse)
    assert torch.equal(got, want)
    assert torch.equal(_TokenGather.apply(got, inverse, order).view_as(x), x)
    assert torch.autograd.gradcheck(lambda t: _TokenGather.apply(t, order, inverse), (x.reshape(2, -1, 5),))


def test_window_attention_paths_match_the_formula():
    """Training (CPU: formula written out) and evaluation (SDPA, cached bias) paths of the shifted-window
    attention against softmax(q k^T * scale + relative-position bias + shift mask) v, gradients included."""
    torch.manual_seed(0)
    attn = WindowAttention3D(8, (2, 3, 3), num_heads=2)
    mask = compute_mask(2, 6, 6, (2, 3, 3), (1, 1, 1), "cpu")  # 4 windows
    x = torch.randn(3 * 4, 18, 8, requires_grad=True)

    def formula(x):
        B_, N, C = x.shape
        q, k, v = attn.qkv(x).view(B_, N, 3, 2, C // 2).permute(2, 0, 3, 1, 4)
        table = attn.relative_position_bias_table[attn.relative_position_index.reshape(-1)]
        s = q @ k.transpose(-2, -1) * attn.scale + table.view(N, N, 2).permute(2, 0, 1)
        s = s.view(3, 4, 2, N, N) + mask[None, :, None]
        out = (s.softmax(-1).view(B_, 2, N, N) @ v).transpose(1, 2).reshape(B_, N, C)
        return attn.proj(out)

    want = formula(x)
    (gx_want, gt_want) = torch.autograd.grad(want.square().sum(), (x, attn.relative_position_bias_table))
    got = attn(x, mask)
    (gx, gt) = torch.autograd.grad(got.square().sum(), (x, attn.relative_position_bias_table))
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(gx, gx_want, atol=1e-5) and torch.allclose(gt, gt_want, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(attn(x, mask), want, atol=1e-5)
        assert torch.allclose(attn(x, mask), want, atol=1e-5)  # cached bias
        attn.relative_position_bias_table.add_(torch.randn_like(attn.relative_position_bias_table))  # new weights
        assert not torch.allclose(attn(x, mask), want, atol=1e-3)


def test_swin_grad_and_no_grad_paths_agree():
    torch.manual_seed(0)
    m = SwinTransformer3D(tiny()).train()  # drop_path 0: train and eval compute the same
    x = torch.randn(2, 3, 3, 40, 52)       # padded and shifted windows
    y = m(x)
    y.square().mean().backward()
    with torch.no_grad():
        assert torch.allclose(m(x), y, atol=1e-5)
    assert all(p.grad is not None for p in m.parameters())
