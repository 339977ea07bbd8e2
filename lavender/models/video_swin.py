"""Video Swin Transformer (3D shifted-window attention) as LAVENDER uses it.

Differences from stock Video Swin, all kept on purpose to match the original's weights/outputs:
* the patch embedding convolves with stride 1 in time after appending ``patch_size[0]-1`` zero frames,
  so T input frames give T temporal tokens (no temporal downsampling, images work with T=1);
* when a window is clamped to a smaller feature map, the relative-position bias uses the top-left
  N x N block of the full-window index (not an index rebuilt for the small window).
"""
from dataclasses import dataclass
from functools import partial, reduce
from operator import mul
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts
from torch import nn

from .dropout import Dropout, fast_dropout

# Sizes of the original's Video Swin configs (window 8x7x7, patch 2x4x4 for all).
SWIN_SETTINGS = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "large": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
# size_img 384: the original's 384-px Video Swin-L (swin_large_384_patch244_window81212_kinetics600_22k), which
# exists for the large size only (docs/original.md#video-swin-backbone)
SIZE_384 = {"large": dict(window_size=(8, 12, 12))}


@dataclass
class SwinConfig:
    """Hyper-parameters of :class:`SwinTransformer3D`."""
    embed_dim: int = 128
    depths: tuple = (2, 2, 18, 2)
    num_heads: tuple = (4, 8, 16, 32)
    window_size: tuple = (8, 7, 7)
    patch_size: tuple = (2, 4, 4)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: float = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.2
    patch_norm: bool = True
    in_chans: int = 3
    use_checkpoint: int = 0       # activation checkpointing of the first N stages (True: every stage)
    checkpoint_keep: str = "linear"  # what a checkpointed block keeps instead of recomputing (KEEP_OPS)

    @classmethod
    def from_size(cls, size="base", overrides=None, size_img=224, **kw):
        """Settings of a named size (tiny/small/base/large) at `size_img` (384: the 384-px model, large only),
        then ``overrides`` (e.g. a ``swin_config`` dict)."""
        if size not in SWIN_SETTINGS:
            raise ValueError(f"unknown Video Swin size {size!r}; choose one of {sorted(SWIN_SETTINGS)}")
        vals = dict(SWIN_SETTINGS[size])
        if int(size_img) == 384:
            if size not in SIZE_384:
                raise ValueError(f"size_img 384: the original's 384-px Video Swin exists for {sorted(SIZE_384)} only, "
                                 f"not {size!r}")
            vals.update(SIZE_384[size])
        vals.update(kw)
        for k, v in (overrides or {}).items():
            if k not in cls.__dataclass_fields__:
                raise KeyError(f"unknown swin_config key {k!r}; valid: {sorted(cls.__dataclass_fields__)}")
            vals[k] = v
        for k in ("depths", "num_heads", "window_size", "patch_size"):
            if k in vals:
                vals[k] = tuple(vals[k])
        return cls(**vals)

    @property
    def num_features(self):
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode)."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def _divisor(self, x):
        """(B, 1, ..) per-sample divisors, keep or inf (x / inf = 0: dropped); None when nothing is dropped.
        Dividing gives the rounding of the usual ``x * mask / keep`` without a pass over ``x * mask``."""
        if self.p == 0.0 or not self.training:
            return None
        keep = 1.0 - self.p
        return keep / x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)

    def forward(self, x):
        div = self._divisor(x)
        return x if div is None else x / div

    def residual(self, x, y):
        """``x + self(y)`` in one pass over the activations."""
        div = self._divisor(y)
        return x + y if div is None else torch.addcdiv(x, y, div)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x, ws):
    """(B, D, H, W, C) -> (B*nW, prod(ws), C), windows in (d, h, w) raster order."""
    B, D, H, W, C = x.shape
    x = x.view(B, D // ws[0], ws[0], H // ws[1], ws[1], W // ws[2], ws[2], C)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, reduce(mul, ws), C)


def window_reverse(windows, ws, B, D, H, W):
    x = windows.view(B, D // ws[0], H // ws[1], W // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, D, H, W, -1)


class _TokenGather(torch.autograd.Function):
    """``x[:, order]`` for a permutation of the token axis; the backward gathers with the inverse
    permutation (index_select's own backward is a zero-fill plus a scatter-add)."""

    @staticmethod
    def forward(ctx, x, order, inverse):
        ctx.save_for_backward(inverse)
        return x.index_select(1, order)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def window_order(D, H, W, ws, ss, device):
    """(order, inverse) token permutations of a (D, H, W) grid: ``order`` rolls it by ``-ss`` and lists
    it window by window (torch.roll + window_partition as one gather), ``inverse`` undoes that."""
    grid = torch.arange(D * H * W, device=device).view(1, D, H, W, 1)
    if any(ss):
        grid = torch.roll(grid, shifts=tuple(-s for s in ss), dims=(1, 2, 3))
    order = window_partition(grid, ws).reshape(-1)
    return order, torch.argsort(order)


def get_window_size(x_size, window_size, shift_size):
    """Clamp the window to the input; an axis that fits in one window gets no shift."""
    ws, ss = list(window_size), list(shift_size)
    for i, n in enumerate(x_size):
        if n <= window_size[i]:
            ws[i] = n
            ss[i] = 0
    return tuple(ws), tuple(ss)


def compute_mask(D, H, W, ws, ss, device):
    """-100/0 region mask of shifted windows, (nW, N, N), on the padded size (D, H, W)."""
    img_mask = torch.zeros((1, D, H, W, 1), device=device)
    cnt = 0
    # Slices built from the shift as the original does: a zero shift makes its axis one region.
    for d in (slice(-ws[0]), slice(-ws[0], -ss[0]), slice(-ss[0], None)):
        for h in (slice(-ws[1]), slice(-ws[1], -ss[1]), slice(-ss[1], None)):
            for w in (slice(-ws[2]), slice(-ws[2], -ss[2]), slice(-ss[2], None)):
                img_mask[:, d, h, w, :] = cnt
                cnt += 1
    mw = window_partition(img_mask, ws).squeeze(-1)
    diff = mw.unsqueeze(1) - mw.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows with a learned relative-position bias."""

    def __init__(self, dim, window_size, num_heads, qkv_bias=True, qk_scale=None, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, tuple(window_size), num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        wd, wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._bias_cache = None  # (key, bias) of the last no-grad call: weights and shapes unchanged

    def attn_bias(self, N, mask, dtype):
        """Additive mask (1, nW*heads, N, N): relative-position bias (+ the shift mask of each window).

        Without autograd (evaluation) it is cached until the bias table changes.
        """
        table = self.relative_position_bias_table
        key = (table._version, N, None if mask is None else id(mask), dtype, table.device)
        cached = not (torch.is_grad_enabled() and table.requires_grad)
        if cached and self._bias_cache is not None and self._bias_cache[0] == key:
            return self._bias_cache[1]
        # Top-left N x N of the full-window index even when the window was clamped (original behaviour).
        idx = self.relative_position_index[:N, :N].reshape(-1)
        # index_select: its backward is an index_add, several times faster on CPU than that of table[idx]
        bias = table.index_select(0, idx).reshape(N, N, -1).permute(2, 0, 1).to(dtype)  # (heads, N, N)
        if mask is not None:
            bias = bias.unsqueeze(0) + mask.to(dtype).unsqueeze(1)       # (nW, heads, N, N)
        bias = bias.reshape(1, -1, N, N)
        if cached:
            self._bias_cache = (key, bias)
        return bias

    def forward(self, x, mask=None):
        """x: (B*nW, N, C), windows of a sample consecutive; mask: (nW, N, N) additive or None."""
        B_, N, C = x.shape
        h, nW = self.num_heads, 1 if mask is None else mask.shape[0]
        # Windows folded into the head axis, (B, nW*heads, N, d), so the bias broadcasts over samples
        # instead of being copied B times.
        qkv = self.qkv(x).view(B_ // nW, nW, N, 3, h, C // h).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.reshape(3, B_ // nW, nW * h, N, C // h).unbind(0)
        bias = self.attn_bias(N, mask, q.dtype)
        drop = self.attn_drop if self.training else 0.0
        if q.device.type == "cpu" and bias.requires_grad:
            # CPU SDPA cannot differentiate its mask in the fused kernel and falls back to a slower
            # reference path: the same formula written out, with that path's rounding (sqrt(scale) on
            # q and on k) so that training computes the numbers it did; the bias is added in place.
            s = self.scale ** 0.5
            attn = torch.matmul(q * s, k.transpose(-2, -1) * s).add_(bias).softmax(-1)
            out = fast_dropout(attn, drop) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale, dropout_p=drop)
        out = out.unflatten(1, (nW, h)).permute(0, 1, 3, 2, 4).reshape(B_, N, C)
        return self.proj_drop(self.proj(out))


def relative_position_index(window_size):
    """(N, N) int64 index into the (2Wd-1)(2Wh-1)(2Ww-1) bias table."""
    wd, wh, ww = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wd - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    return rel.sum(-1)


class SwinTransformerBlock3D(nn.Module):
    def __init__(self, dim, num_heads, window_size, shift_size, mlp_ratio=4.0, qkv_bias=True, qk_scale=None,
                 drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def _attend(self, x, plan):
        B, D, H, W, C = x.shape
        x = self.norm1(x)
        Dp, Hp, Wp = plan.padded
        if plan.padded != (D, H, W):
            # Padding comes after norm1, so padded tokens are zeros (attended unmasked in plain windows).
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H, 0, Dp - D))
        shifted = any(self.shift_size) and any(plan.shift)
        order, inverse = plan.shifted if shifted else plan.plain
        win = _TokenGather.apply(x.reshape(B, -1, C), order, inverse)
        win = self.attn(win.view(-1, plan.tokens, C), mask=plan.mask if shifted else None)
        x = _TokenGather.apply(win.view(B, -1, C), inverse, order).view(B, Dp, Hp, Wp, C)
        return x if plan.padded == (D, H, W) else x[:, :D, :H, :W].contiguous()

    def forward(self, x, plan):
        """x: (B, D, H, W, C); plan: the layer's :class:`WindowPlan` for this size."""
        x = self.drop_path.residual(x, self._attend(x, plan))
        return self.drop_path.residual(x, self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate 2x2 spatial neighbours -> LayerNorm(4C) -> Linear(4C, 2C); time is untouched."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        H, W = x.shape[2:4]
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class WindowPlan(NamedTuple):
    """Everything a stage's blocks share for one input size: computed once, not per block or call."""
    shift: tuple        # shift of the shifted blocks after clamping (all 0: no shifted windows)
    padded: tuple       # (Dp, Hp, Wp), the size padded to whole windows
    tokens: int         # tokens per window
    mask: torch.Tensor  # (nW, N, N) additive shift mask
    plain: tuple        # (order, inverse) token permutations of the plain windows
    shifted: tuple      # ... and of the shifted windows


# checkpoint_keep: the aten ops whose outputs a checkpointed block saves in its forward; the backward recomputes
# only the rest (selective activation checkpointing). Matrix products are most of the recomputation's time;
# keeping the linear layers' outputs did not raise the measured peak (docs/performance.md#activation-checkpointing).
KEEP_OPS = {"none": (), "linear": ("mm", "addmm"),
            "matmul": ("mm", "addmm", "bmm", "_scaled_dot_product_efficient_attention",  # GPU attention: SDPA
                       "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention")}


def _keep_context(names):
    """`context_fn` for torch.utils.checkpoint that saves the outputs of the aten ops `names`."""
    ops = frozenset(getattr(torch.ops.aten, n).default for n in names)

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in ops else CheckpointPolicy.PREFER_RECOMPUTE
    return partial(create_selective_checkpoint_contexts, policy)


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks alternating plain/shifted windows, then optional PatchMerging."""

    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, qk_scale, drop, attn_drop,
                 drop_path, downsample, use_checkpoint=False):  # use_checkpoint: set by SwinTransformer3D
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(i // 2 for i in window_size)
        self.use_checkpoint = use_checkpoint
        self.keep = {}  # torch.utils.checkpoint keywords of a checkpointed block (set by SwinTransformer3D)
        self.blocks = nn.ModuleList([
            SwinTransformerBlock3D(dim, num_heads, window_size, (0, 0, 0) if i % 2 == 0 else self.shift_size,
                                   mlp_ratio, qkv_bias, qk_scale, drop, attn_drop, drop_path[i])
            for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None
        self._plans = {}  # (D, H, W, device) -> WindowPlan

    def plan(self, D, H, W, device):
        """The :class:`WindowPlan` of a (D, H, W) input, built once per size and device."""
        key = (D, H, W, str(device))
        if key not in self._plans:
            ws, ss = get_window_size((D, H, W), self.window_size, self.shift_size)
            padded = tuple(-(-n // ws[i]) * ws[i] for i, n in enumerate((D, H, W)))
            self._plans[key] = WindowPlan(
                shift=ss, padded=padded, tokens=reduce(mul, ws), mask=compute_mask(*padded, ws, ss, device),
                plain=window_order(*padded, ws, (0, 0, 0), device), shifted=window_order(*padded, ws, ss, device))
        return self._plans[key]

    def forward(self, x):
        """(B, C, D, H, W) -> (B, C', D, H', W') (a view of a channels-last tensor)."""
        B, C, D, H, W = x.shape
        plan = self.plan(D, H, W, x.device)
        x = x.permute(0, 2, 3, 4, 1)
        for blk in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, plan, use_reentrant=False, **self.keep)
            else:
                x = blk(x, plan)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):
    """Conv3d patch embedding, stride 1 in time with zero frames appended (T frames -> T tokens)."""

    def __init__(self, patch_size=(2, 4, 4), in_chans=3, embed_dim=96, norm=True):
        super().__init__()
        self.patch_size = tuple(patch_size)
        stride = (1,) + self.patch_size[1:]
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.patch_size, stride=stride)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x):
        """(B, C, T, H, W) -> (B, E, T, ceil(H/p), ceil(W/p))."""
        _, _, _, H, W = x.shape
        pt, ph, pw = self.patch_size
        x = F.pad(x, (0, (pw - W % pw) % pw, 0, (ph - H % ph) % ph, 0, pt - 1))
        x = self.proj(x)
        if self.norm is not None:
            x = self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return x


class SwinTransformer3D(nn.Module):
    """Video Swin backbone: (B, 3, T, H, W) -> (B, num_features, T, ~H/32, ~W/32) after the final ``norm``."""

    def __init__(self, cfg: SwinConfig = None, **kw):
        super().__init__()
        cfg = cfg or SwinConfig(**kw)
        self.cfg = cfg
        self.num_layers = len(cfg.depths)
        self.num_features = cfg.num_features
        self.patch_embed = PatchEmbed3D(cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.patch_norm)
        self.pos_drop = Dropout(cfg.drop_rate)
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(cfg.depths):
            start = sum(cfg.depths[:i])
            self.layers.append(BasicLayer(
                int(cfg.embed_dim * 2 ** i), depth, cfg.num_heads[i], cfg.window_size, cfg.mlp_ratio,
                cfg.qkv_bias, cfg.qk_scale, cfg.drop_rate, cfg.attn_drop_rate, dpr[start:start + depth],
                downsample=i < self.num_layers - 1))
        self.norm = nn.LayerNorm(self.num_features)
        self.apply(_init_weights)
        self.set_use_checkpoint(cfg.use_checkpoint)
        self.set_checkpoint_keep(cfg.checkpoint_keep)

    def set_use_checkpoint(self, stages):
        """Activation checkpointing of the first `stages` stages (their activations are the largest);
        True: every stage (the original's setting), False/0: none."""
        n = self.num_layers if stages is True else int(stages)
        for i, layer in enumerate(self.layers):
            layer.use_checkpoint = i < n

    def set_checkpoint_keep(self, keep):
        """What checkpointed blocks keep of their forward (a `KEEP_OPS` name; "none": recompute it all)."""
        if keep not in KEEP_OPS:
            raise ValueError(f"checkpoint_keep {keep!r}: choose one of {sorted(KEEP_OPS)}")
        kw = {"context_fn": _keep_context(KEEP_OPS[keep])} if KEEP_OPS[keep] else {}
        for layer in self.layers:
            layer.keep = kw

    def forward(self, x):
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)  # channels-last between layers: each permute below is a view, not a copy
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


def _init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
