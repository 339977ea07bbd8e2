"""Shape adaptation: a file tensor of another shape made to fit the model where there is a sensible way
(position tables sliced or padded, relative position bias tables interpolated, 2D patch kernels inflated)."""
import torch.nn.functional as F

__all__ = ["adapt_tensor"]


def _solve_window(n_table, n_index=None):
    """Window (wd, wh, ww) of a bias table with n_table rows, assuming a square spatial window."""
    for wh in range(64, 0, -1):
        side = (2 * wh - 1) ** 2
        if n_table % side == 0 and (n_table // side) % 2 == 1:
            wd = (n_table // side + 1) // 2
            if n_index is None or wd * wh * wh == n_index:
                return wd, wh, wh
    raise ValueError(f"cannot infer the window of a {n_table}-row relative position bias table")


def adapt_tensor(key, src, dst, model, sd):
    """Tensor of dst's shape made from src, or None if there is no sensible adaptation; plus a note."""
    if key.endswith("enc_img.emb_pos") or key.endswith("enc_img.emb_len"):
        dim = 2 if key.endswith("emb_pos") else 1
        if src.dim() != dst.dim() or src.shape[-1] != dst.shape[-1]:
            return None, None
        # Slice or pad along the positions/frames axis; extra rows keep the model's current values.
        out = dst.detach().clone()
        n = min(src.shape[dim], dst.shape[dim])
        out.narrow(dim, 0, n).copy_(src.narrow(dim, 0, n))
        return out, f"{key}: {tuple(src.shape)} -> {tuple(dst.shape)} (sliced/padded)"
    if key.endswith("relative_position_bias_table") and src.dim() == 2 and src.shape[1] == dst.shape[1]:
        win_dst = model.get_submodule(key.rsplit(".", 1)[0]).window_size
        idx = sd.get(key.replace("relative_position_bias_table", "relative_position_index"))
        win_src = _solve_window(src.shape[0], idx.shape[0] if idx is not None else None)
        size = tuple(2 * w - 1 for w in win_dst)
        grid = src.t().reshape(1, src.shape[1], *(2 * w - 1 for w in win_src)).float()
        if win_src[0] == 1:  # a 2D Swin table: bicubic-resized in space, then tiled over time (inflate_weights)
            if grid.shape[3:] != size[1:]:
                grid = F.interpolate(grid[:, :, 0], size=size[1:], mode="bicubic")[:, :, None]
            out, how = grid.repeat(1, 1, size[0], 1, 1), "2D table resized and tiled over time"
        else:
            out, how = F.interpolate(grid, size=size, mode="trilinear", align_corners=False), "interpolated"
        return out.reshape(src.shape[1], -1).t().to(dst.dtype), f"{key}: window {win_src} -> {tuple(win_dst)} ({how})"
    if key.endswith("patch_embed.proj.weight") and dst.dim() == 5:
        w = src.unsqueeze(2) if src.dim() == 4 else src  # 2D Swin: one time step
        if w.shape[:2] != dst.shape[:2] or w.shape[3:] != dst.shape[3:]:
            return None, None
        # Spread the kernel evenly over time so a static clip gives the same response (I3D inflation; for
        # a 2D kernel the original's inflate_weights: repeated over time, divided by the temporal size).
        kt = dst.shape[2]
        out = (w.sum(2, keepdim=True) / kt).repeat(1, 1, kt, 1, 1)
        return out.to(dst.dtype), f"{key}: temporal kernel {w.shape[2]} -> {kt} (inflated)"
    return None, None

