"""size_img 384: the original's 384-px Video Swin (its get_vidswin_model: Swin-L only, window 8x12x12, its own
checkpoint names); the shapes below are written from that config, not from our code."""
import pytest
import torch

from lavender.config import load_config
from lavender.errors import ConfigError
from lavender.models import build_model
from lavender.models.video_swin import SwinConfig
from lavender.paths import kinetics_ckpt, swin2d_ckpt

# swin_large_384_patch244_window81212_kinetics600_22k (on swin_large): embed 192, depths 2-2-18-2, heads 6-12-24-48,
# window (8, 12, 12), patch (2, 4, 4), patch_norm; LAVENDER's stride-1 temporal patch embedding keeps the kernel shape
EMBED, DEPTHS, HEADS, WINDOW = 192, (2, 2, 18, 2), (6, 12, 24, 48), (8, 12, 12)


def expected_swin_keys():
    """[(key, shape)] of enc_img.swin.* in state_dict order for the 384-px Swin-L."""
    n_bias = (2 * WINDOW[0] - 1) * (2 * WINDOW[1] - 1) * (2 * WINDOW[2] - 1)  # 15 * 23 * 23 = 7935
    n_tok = WINDOW[0] * WINDOW[1] * WINDOW[2]  # 1152
    p = "enc_img.swin."
    out = [(p + "patch_embed.proj.weight", (EMBED, 3, 2, 4, 4)), (p + "patch_embed.proj.bias", (EMBED,)),
           (p + "patch_embed.norm.weight", (EMBED,)), (p + "patch_embed.norm.bias", (EMBED,))]
    for s, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        C = EMBED * 2 ** s
        for b in range(depth):
            q = f"{p}layers.{s}.blocks.{b}."
            out += [(q + "norm1.weight", (C,)), (q + "norm1.bias", (C,)),
                    (q + "attn.relative_position_bias_table", (n_bias, heads)),
                    (q + "attn.relative_position_index", (n_tok, n_tok)),
                    (q + "attn.qkv.weight", (3 * C, C)), (q + "attn.qkv.bias", (3 * C,)),
                    (q + "attn.proj.weight", (C, C)), (q + "attn.proj.bias", (C,)),
                    (q + "norm2.weight", (C,)), (q + "norm2.bias", (C,)),
                    (q + "mlp.fc1.weight", (4 * C, C)), (q + "mlp.fc1.bias", (4 * C,)),
                    (q + "mlp.fc2.weight", (C, 4 * C)), (q + "mlp.fc2.bias", (C,))]
        if s < 3:
            out += [(f"{p}layers.{s}.downsample.reduction.weight", (2 * C, 4 * C)),
                    (f"{p}layers.{s}.downsample.norm.weight", (4 * C,)),
                    (f"{p}layers.{s}.downsample.norm.bias", (4 * C,))]
    return out + [(p + "norm.weight", (8 * EMBED,)), (p + "norm.bias", (8 * EMBED,))]


def test_size_img_384_builds_the_originals_384_swin():
    with torch.device("meta"):
        model = build_model({"vis_backbone_size": "large", "size_img": 384, "use_checkpoint": True})
    sd = model.state_dict()
    got = [(k, tuple(v.shape)) for k, v in sd.items() if k.startswith("enc_img.swin.")]
    assert got == expected_swin_keys()  # same keys, same shapes, same order
    assert tuple(sd["enc_img.fc.weight"].shape) == (768, 8 * EMBED)
    # 384 px: 12 x 12 patches per frame, within the 1 + 14^2 positions of emb_pos
    assert model.enc_img.emb_pos.shape[2] >= 1 + (384 // 32) ** 2
    with torch.device("meta"):  # every other size keeps the 8x7x7 window
        assert build_model({"vis_backbone_size": "large", "size_img": 224}).enc_img.swin.layers[0].blocks[0] \
            .attn.relative_position_bias_table.shape[0] == 15 * 13 * 13


def test_size_img_384_checkpoint_names_and_refusals():
    assert kinetics_ckpt("large", 600, 384).endswith(
        "video_swin_transformer/swin_large_384_patch244_window81212_kinetics600_22k.pth")
    assert swin2d_ckpt("large", 384).endswith("swin_transformer/swin_large_patch4_window12_384_22k.pth")
    assert kinetics_ckpt("base", 600, 224).endswith("swin_base_patch244_window877_kinetics600_22k.pth")
    cfg = load_config(["--size_img", "384", "--vis_backbone_size", "large", "--kinetics", "600"])
    assert cfg.size_img == 384
    for size in ("base", "tiny"):  # the original asserts vis_backbone_size == "large" at 384
        with pytest.raises(ConfigError, match="size_img 384 .*large"):
            load_config(["--size_img", "384", "--vis_backbone_size", size, "--kinetics", "600"])
    with pytest.raises(ValueError, match="large"):
        SwinConfig.from_size("base", size_img=384)


def test_a_tiny_384_model_runs():
    """The 12x12 window on 384-px frames (tiny widths through swin_config; the window stays the 384 one)."""
    torch.manual_seed(0)
    model = build_model({"vis_backbone_size": "large", "size_img": 384, "fusion_encoder": "", "txt_backbone": "",
                         "swin_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]},
                         "bert_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "intermediate_size": 32, "vocab_size": 40, "max_position_embeddings": 16}})
    assert model.cfg.swin.window_size == WINDOW
    with torch.no_grad():
        feat, mask = model.eval().encode_video(torch.randn(1, 2, 3, 384, 384))
    assert feat.shape == (1, 2 * (1 + 12 * 12), 16) and mask.sum() == 2 * 145
