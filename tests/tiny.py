"""Tiny fixtures shared by the task/engine tests: a colour-world frame store and a tiny model config."""
import json
import os
import random

import numpy as np

from lavender.data.frames import encode_frame
from lavender.data.tsv import write_tsv

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}
SHAPES = ("circle", "square")

TINY_MODEL = {
    "vis_backbone_init": "random", "vis_backbone_size": "tiny", "fusion_encoder_rand_init": True,
    "swin_config": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": [2, 7, 7]},
    "bert_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "size_img": 32, "size_frame": 2, "n_workers": 0, "deepspeed": False, "use_checkpoint": False,
}


def _frame(color, shape, t, rng, size=48):
    img = np.full((size, size, 3), 245, np.uint8)
    c = np.array(COLORS[color], np.uint8)
    x0 = 4 + 4 * t  # big shapes: the tiny test model sees them at 32 px
    if shape == "square":
        img[8:40, x0:x0 + 32] = c
    else:
        yy, xx = np.mgrid[:size, :size]
        img[(yy - 24) ** 2 + (xx - x0 - 16) ** 2 < 256] = c
    return img


def make_color_world(root, n_videos=24, n_frames=3, seed=0, dataset="tiny"):
    """img_{dataset}.tsv (+lineidx, id2lineidx) and qa / mc / retrieval annotation jsons."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    vids = []
    rows = []
    for i in range(n_videos):
        color, shape = list(COLORS)[i % 4], SHAPES[(i // 4) % 2]
        vid = f"video{i}"
        vids.append((vid, color, shape))
        rows.append([vid] + [encode_frame(_frame(color, shape, t, rng)) for t in range(n_frames)])
    write_tsv(os.path.join(root, f"img_{dataset}.tsv"), rows,
              id2lineidx_path=os.path.join(root, f"img_{dataset}.id2lineidx.pkl"))
    split = {"train": vids[: n_videos // 2], "val": vids[n_videos // 2: 3 * n_videos // 4],
             "test": vids[3 * n_videos // 4:]}
    colors = list(COLORS)

    def qa(v):
        return {"video": v[0], "question": "what color is the shape?", "answer_text": v[1]}

    def mc(v):
        opts = [f"a {c} {v[2]}" for c in colors]
        return {"video": v[0], "question": "", "answer": colors.index(v[1]),
                **{f"option_{k}": o for k, o in enumerate(opts)}}

    def qamc(v):
        return {"video": v[0], "question": "what color is the shape?", "answer": colors.index(v[1]),
                **{f"option_{k}": c for k, c in enumerate(colors)}}

    def ret(v):
        return {"video": v[0], "caption": f"a {v[1]} {v[2]} moves right"}

    for name, fn in (("tiny-qa", qa), ("tiny-mc", mc), ("tiny-qamc", qamc), ("tiny-retrieval", ret)):
        with open(os.path.join(root, f"txt_{name}.json"), "w") as f:
            json.dump({s: [fn(v) for v in vs] for s, vs in split.items()}, f)
    return root


def tiny_argv(data_dir, out_dir, task, type_, **extra):
    """Command line for a main script on the colour world with the tiny model."""
    cfg = dict(TINY_MODEL, type=type_, task=task, dataset="tiny", data_dir=str(data_dir),
               size_txt=12, size_epoch=1, size_batch=4, lr=1e-3, size_option=4, logging_steps=2)
    cfg.update(extra)
    path = os.path.join(str(out_dir), f"args_{task}.json")
    os.makedirs(str(out_dir), exist_ok=True)
    with open(path, "w") as f:
        json.dump({k: v for k, v in cfg.items() if k not in ("path_output",)}, f)
    return ["--config", path, "--path_output", str(out_dir)]
