"""Checks that involve more than one key, or a file a key names; each key's own type and range are
checked by its declared type (keys.py, types.py)."""
import os

from ..errors import ConfigError
from .tables import DECLARED, NOT_BUILT


def check_path_ckpt(cfg):
    """A path_ckpt that names no file (a run's preflight lists it with the other missing inputs instead)."""
    if cfg.path_ckpt and not os.path.isfile(cfg.path_ckpt):
        raise ConfigError(f"path_ckpt: checkpoint file not found: {cfg.path_ckpt}")


def validate(cfg):
    """Refuse values that cannot work together, before any work starts; returns `cfg` (values normalised)."""
    for key, decl in DECLARED.items():
        if key in cfg:
            cfg[key] = decl.type.check(cfg[key], key, cfg.get("config") or "config")
    if cfg.size_frame > cfg.max_size_frame:
        raise ConfigError(f"size_frame {cfg.size_frame} exceeds max_size_frame {cfg.max_size_frame}")
    for key, (allowed, why) in NOT_BUILT.items():
        if cfg.get(key, allowed) != allowed:
            raise ConfigError(f"{key} {cfg[key]!r}: {why}")
    if cfg.size_img == 384 and cfg.vis_backbone_size != "large":
        raise ConfigError(f"size_img 384 selects the original's 384-px Video Swin (window 8x12x12), which it builds "
                          f"for vis_backbone_size large only (got {cfg.vis_backbone_size!r}): set vis_backbone_size "
                          f"large, or another size_img (the 8x7x7-window model)")
    if not cfg.caption_txt_causal and cfg.txt_backbone_embed_only:
        raise ConfigError("caption_txt_causal false sets the mask of the text's own encoder, which exists only with "
                          "txt_backbone_embed_only false")
    if cfg.vis_backbone_init == "3d" and not cfg.path_ckpt and cfg.vis_backbone_size in ("base", "large") \
            and cfg.kinetics not in (400, 600):
        raise ConfigError(f"vis_backbone_init 3d loads Kinetics-400 or -600 Video Swin weights: set kinetics to "
                          f"400 or 600 (got {cfg.kinetics})")
    if cfg.task_temperature != DECLARED["task_temperature"].default and cfg.task_sampling != "temperature":
        raise ConfigError(f"task_temperature {cfg.task_temperature} applies to task_sampling temperature only "
                          f"(task_sampling is {cfg.task_sampling!r})")
    if cfg.checkpoint_keep != DECLARED["checkpoint_keep"].default and cfg.use_checkpoint in (False, 0):
        raise ConfigError(f"checkpoint_keep {cfg.checkpoint_keep} chooses what checkpointed Swin blocks keep; "
                          f"with use_checkpoint false no block is checkpointed (set use_checkpoint too)")
    parts = cfg.size_part.values() if isinstance(cfg.size_part, dict) else [cfg.size_part]
    if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in parts):
        raise ConfigError(f"size_part must be a number of parts >= 1, or a dict {{dataset: parts}}, "
                          f"got {cfg.size_part!r}")
    return cfg
