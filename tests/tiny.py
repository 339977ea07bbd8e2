"""Tiny fixtures shared by the task/engine tests: a colour-world frame store and a tiny model config."""
import contextlib
import json
import logging
import os
import random

import numpy as np

from lavender.data.codec import encode_frame
from lavender.data.tsv import TSVFile, write_tsv

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}
SHAPES = ("circle", "square")

TINY_MODEL = {
    "vis_backbone_init": "random", "vis_backbone_size": "tiny", "bert_init": "random",
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


def write_video(path, frames, fps=10, codec="mpeg4"):
    """RGB uint8 frames (equal even sizes) -> a video file with PyAV (mjpeg: full-range pixels)."""
    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# the tests read every epoch's weights and the resume state of finished runs: keep them all
KEEP_ALL = {"keep_last": -1, "keep_resume": True}

def write_color_videos(folder, n_videos=24, n_frames=6, seed=0, codec="mpeg4"):
    """One mp4 per video of `make_color_world` (same ids, colours and shapes), for runs on `video_dir`."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(n_videos):
        color, shape = list(COLORS)[i % 4], SHAPES[(i // 4) % 2]
        write_video(os.path.join(folder, f"video{i}.mp4"), [_frame(color, shape, t // 2, rng) for t in range(n_frames)],
                    codec=codec)
    return str(folder)


KINDS = ("qa", "fib", "qamc", "mc", "retrieval", "cap")


def make_color_world(root, n_videos=24, n_frames=3, seed=0, dataset="tiny", tasks=None, cap_stem="{split}"):
    """img_{dataset}.tsv (+lineidx, id2lineidx) and one annotation json per task.

    `tasks` maps task name -> kind (qa, fib, qamc, mc, retrieval, cap); by default `tiny-{kind}` for each kind.
    The answer is always the colour of the shape, so only a model that looks at the frames can get it.
    `cap` writes captioning data in SwinBERT's layout under `{root}/{name}/`: `{cap_stem}.yaml` and its files
    per split (e.g. cap_stem "{split}_32frames" for the original configs' MSRVTT-v2/train_32frames.yaml).
    """
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    vids, rows = [], []
    for i in range(n_videos):
        color, shape = list(COLORS)[i % 4], SHAPES[(i // 4) % 2]
        vid = f"video{i}"
        vids.append((vid, color, shape))
        rows.append([vid] + [encode_frame(_frame(color, shape, t, rng)) for t in range(n_frames)])
    write_tsv(os.path.join(root, f"img_{dataset}.tsv"), rows,
              id2lineidx_path=os.path.join(root, f"img_{dataset}.id2lineidx.pkl"))
    split = {"train": vids[: n_videos // 2], "val": vids[n_videos // 2: 3 * n_videos // 4],
             "test": vids[3 * n_videos // 4:]}
    colors = list(COLORS) + ["purple"]  # 5 options, as the original MC configs expect
    ans2label = {c: i for i, c in enumerate(colors)}

    def item(kind, v):
        if kind == "qa":
            return {"video": v[0], "question": "what color is the shape?", "answer_text": v[1]}
        if kind == "fib":
            return {"video": v[0], "question": f"a [MASK] {v[2]} moves right.", "answer": ans2label[v[1]]}
        if kind == "qamc":
            return {"video": v[0], "question": "what color is the shape?", "answer": colors.index(v[1]),
                    **{f"option_{k}": c for k, c in enumerate(colors)}}
        if kind == "mc":
            return {"video": v[0], "question": "", "answer": colors.index(v[1]),
                    **{f"option_{k}": f"a {c} {v[2]}" for k, c in enumerate(colors)}}
        return {"video": v[0], "caption": f"a {v[1]} {v[2]} moves right"}

    for name, kind in (tasks or {f"tiny-{k}": k for k in KINDS}).items():
        if kind == "cap":
            write_caption_splits(os.path.join(root, name), split, dict(zip([v[0] for v in vids], rows)), cap_stem)
            continue
        d = {s: [item(kind, v) for v in vs] for s, vs in split.items()}
        if kind == "fib":
            d["ans2label"] = ans2label
        with open(os.path.join(root, f"txt_{name}.json"), "w") as f:
            json.dump(d, f)
    return root


def write_caption_splits(folder, split, rows, stem="{split}"):
    """SwinBERT-layout captioning data: per split `{stem}.yaml`, an img TSV (key, field, frames), a caption
    TSV and a COCO-format json; the caption `a {colour} {shape} moves right` needs the frames."""
    os.makedirs(folder, exist_ok=True)
    for split_name, vs in split.items():
        s = stem.format(split=split_name)
        write_tsv(os.path.join(folder, f"{s}.img.tsv"), ([v[0], json.dumps({"num_frames": len(rows[v[0]]) - 1})]
                                                         + rows[v[0]][1:] for v in vs))
        caps = {v[0]: f"a {v[1]} {v[2]} moves right" for v in vs}
        write_tsv(os.path.join(folder, f"{s}.caption.tsv"), ([k, json.dumps([{"caption": c}])] for k, c in caps.items()))
        with open(os.path.join(folder, f"{s}.caption_coco_format.json"), "w") as f:
            json.dump({"images": [{"id": k} for k in caps],
                       "annotations": [{"image_id": k, "caption": c, "id": i} for i, (k, c) in enumerate(caps.items())]}, f)
        with open(os.path.join(folder, f"{s}.yaml"), "w") as f:
            f.write(f"img: {s}.img.tsv\ncaption: {s}.caption.tsv\ncaption_coco_format: {s}.caption_coco_format.json\n")


WORDS = ("what color is the shape a moves right option circle square purple " + " ".join(COLORS)).split()


def write_tiny_vocab(root):
    """A small WordPiece vocabulary (special tokens first, as bert-base-uncased): the tiny model then
    predicts over ~80 tokens instead of 30522 and learns in seconds."""
    path = os.path.join(root, "vocab")
    os.makedirs(path, exist_ok=True)
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "true", "false", "answer", ":", "?", ".", ","]
    toks += [str(d) for d in range(10)] + sorted(set(WORDS))
    toks += list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(dict.fromkeys(toks)) + "\n")
    return path, len(dict.fromkeys(toks))


def tiny_argv(data_dir, out_dir, task, type_, **extra):
    """Command line for a main script on the colour world with the tiny model and vocabulary."""
    vocab_dir, n_vocab = write_tiny_vocab(str(data_dir))
    model = dict(TINY_MODEL, tokenizer=vocab_dir,
                 bert_config=dict(TINY_MODEL["bert_config"], vocab_size=n_vocab, max_position_embeddings=128))
    cfg = dict(model, type=type_, task=task, dataset="tiny", data_dir=str(data_dir),
               size_txt=12, size_epoch=1, size_batch=4, lr=1e-3, size_option=5, logging_steps=2, **KEEP_ALL)
    cfg.update(extra)
    path = os.path.join(str(out_dir), f"args_{task}.json")
    os.makedirs(str(out_dir), exist_ok=True)
    with open(path, "w") as f:
        json.dump({k: v for k, v in cfg.items() if k not in ("path_output",)}, f)
    return ["--config", path, "--path_output", str(out_dir)]


def tiny_overrides(data_dir, out_dir):
    """Command-line overrides that turn any benchmark config into a one-step tiny-model run on `data_dir`."""
    vocab, n = write_tiny_vocab(str(data_dir))
    m = TINY_MODEL
    return ["--data_dir", str(data_dir), "--path_output", str(out_dir), "--tokenizer", vocab,
            "--vis_backbone_init", "random", "--vis_backbone_size", "tiny", "--bert_init", "random",
            "--swin_config", json.dumps(m["swin_config"]),
            "--bert_config", json.dumps(dict(m["bert_config"], vocab_size=n, max_position_embeddings=128)),
            "--size_img", "32", "--size_frame", "2", "--size_batch", "2", "--max_steps", "1", "--n_workers", "0",
            "--keep_last", "-1", "--keep_resume", "true"]


class Payload:
    """An object whose unpickling runs code (creates `marker`): what a crafted checkpoint or index carries."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def frame_b64(seed, size=16):
    """A base64 JPEG of random pixels."""
    arr = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return encode_frame(arr)


def frame_rows(n=10):
    """`n` rows ``vid{i} \\t frame \\t frame`` of a frame TSV (the tools' layout)."""
    return [[f"vid{i}", frame_b64(i), frame_b64(i + 1)] for i in range(n)]


def read_parts(folder, name, n):
    """The rows of the pretraining parts {name}_train_0..n-1.tsv, in order."""
    return [row for p in range(n) for row in TSVFile(os.path.join(str(folder), f"{name}_train_{p}.tsv"))]


def write_qa_classes(root, src="tiny-qa", dst="tiny-qa-ts"):
    """A copy of a colour-world QA json whose items carry integer answer classes (the classifier
    baseline's `answer`); returns the new task name."""
    d = json.load(open(os.path.join(root, f"txt_{src}.json")))
    classes = {c: i for i, c in enumerate(COLORS)}
    for items in d.values():
        for it in items:
            it["answer"] = classes[it["answer_text"]]
    with open(os.path.join(root, f"txt_{dst}.json"), "w") as f:
        json.dump(d, f)
    return dst


def run_killed(family, argv, monkeypatch, when):
    """Run `family` with `argv` and kill it (KeyboardInterrupt) right after the resume state for which
    `when(state)` is true has been written: a killed run, to be resumed with `--resume latest`."""
    import pytest
    from lavender.engine.run_files import RunFiles
    from lavender.run import run
    save = RunFiles.save_resume

    def killed(self, state):
        save(self, state)
        if when(state):
            raise KeyboardInterrupt("simulated kill")
    with monkeypatch.context() as m:
        m.setattr(RunFiles, "save_resume", killed)
        with pytest.raises(KeyboardInterrupt):
            run(family, argv)


@contextlib.contextmanager
def lavender_log(level=logging.INFO):
    """The records of the "lavender" logger inside the block (it does not propagate once a run set it up)."""
    records, lg = [], logging.getLogger("lavender")
    handler = logging.Handler(level)
    handler.emit = records.append
    old = lg.level
    lg.addHandler(handler)
    lg.setLevel(level)
    try:
        yield records
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)


# A tiny captioning model whose captions depend on the video and end at different lengths (decoding tests).
DECODER_VOCAB = 30
DECODER_SPECIAL = {"pad": 0, "cls": 2, "sep": 3, "mask": 4}
DECODER_MODEL = {"vis_backbone_size": "tiny", "fusion_encoder": "", "txt_backbone": "",
                 "swin_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2],
                                 "window_size": [2, 3, 3]},
                 "bert_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "intermediate_size": 64, "vocab_size": DECODER_VOCAB, "max_position_embeddings": 24},
                 "max_size_frame": 3, "max_size_patch": 4}


def decoder_model(**kw):
    """Random fp32 DECODER_MODEL (`kw` overrides its settings) with peaked, input-dependent distributions."""
    import torch
    from lavender.models import build_model
    torch.manual_seed(0)
    model = build_model(dict(DECODER_MODEL, **kw)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and "relative_position" not in name:
                p.normal_(0, 0.3)  # peaked, input-dependent distributions (the 0.02 init is near uniform)
        model.fc_mtm.predictions.bias.normal_(0, 1)
        model.fc_mtm.predictions.bias[DECODER_SPECIAL["sep"]] = 4.0
    return model
