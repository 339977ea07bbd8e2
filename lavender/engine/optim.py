"""AdamW with the original's parameter groups, and its linear warm-up/decay schedule."""
import torch


def param_groups(model, lr, decay, vis_lr_mul=1.0):
    """Four groups as the original: (decay, swin), (decay, other), (no decay, swin), (no decay, other).

    No decay for names containing "bias" or LayerNorm weights (so Swin's relative_position_bias_table
    is not decayed; Swin's norm1/norm2 are, exactly as in the original).
    """
    groups = {(d, s): [] for d in (True, False) for s in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = "bias" in name or "LayerNorm.weight" in name
        groups[(not no_decay, "swin." in name)].append(p)
    out = []
    for (d, s), params in groups.items():
        if params:
            out.append({"params": params, "weight_decay": decay if d else 0.0,
                        "lr": lr * (vis_lr_mul if s else 1.0), "name": f"{'decay' if d else 'no_decay'}_{'swin' if s else 'other'}"})
    return out


def build_optimizer(model, cfg):
    # fused: one kernel for all parameters; on CPU ~7x faster than the per-tensor loop, which
    # otherwise costs a quarter of a small model's step (dense 30522-row embedding/decoder grads)
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(param_groups(model, cfg.lr, cfg.decay, cfg.vis_backbone_lr_mul),
                             lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8, fused=fused)


LR_FLOOR = 1e-8  # the original's absolute floor: lr = max(1e-8, peak * factor), the first step at 1e-8


def warmup_linear(max_iter, warmup_ratio=0.1, floor=LR_FLOOR):
    """LR factor: linear warm-up over 10% of the steps, then linear decay to 0, never below `floor`."""
    max_iter = max(int(max_iter), 1)
    warmup = int(warmup_ratio * max_iter)

    def factor(step):
        if step < warmup:
            f = step / warmup
        else:
            f = (max_iter - min(step, max_iter)) / max(max_iter - warmup, 1)
        return max(f, floor)
    return factor


def build_scheduler(optimizer, max_iter):
    """The schedule of every parameter group, floored at an absolute LR_FLOOR (the factor's floor is
    LR_FLOOR / the group's peak lr), as the original's WarmupLinearLR."""
    peaks = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [warmup_linear(max_iter, floor=LR_FLOOR / p) for p in peaks])
