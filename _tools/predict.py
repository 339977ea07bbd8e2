"""Try a trained checkpoint on your own videos.

    python _tools/predict.py --path_ckpt RUN_DIR/ckpt_violet_TASK_best.pt VIDEO [VIDEO ...] MODE
MODE is one of
    --question "what color is the shape?"                      open-ended QA: top answers, probabilities
    --question "what does it do?" --options "moves left" "moves right" ...
                                                                multiple choice (--mc_mode digit|truefalse)
    --text "a red circle moves right"                           rank the videos for the text
    --caption                                                   a caption per video
Videos are files (mp4, avi, webm, gif, ...) or keys of a frame TSV or of a folder of video files (--tsv FILE
--key K [K ...]; a run trained with video_dir reads its files with --tsv VIDEO_DIR).

The checkpoint's run folder (its args.json) gives the model and data settings, or --config FILE. A file
is read as the tools read videos for training (frames extracted and JPEG-encoded as
_tools/extract_video-frame.py does, as many as the run's frame store has per video unless --sample N;
then the run's temporal sampling and eval transform). Any config key can be overridden as --KEY VALUE
(e.g. --mc_mode truefalse, --num_beams 3, --size_batch_eval 16 videos per batch, --skip_bad true to
leave out unreadable videos).
Prints a table, or JSON with --json; --grid OUT.png draws the frames the model saw with its
predictions. A bad input or checkpoint prints one line and exits with status 2 (--debug: traceback).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import EXIT_USER_ERROR, main_guard  # noqa: E402
from lavender.config import DEFAULTS  # noqa: E402
from lavender.errors import ConfigError, DataError  # noqa: E402

GRID_ROWS = {"qa": 8, "mc": 8, "text": 5, "caption": 8}  # videos drawn by --grid


def parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("videos", nargs="*", help="video files")
    ap.add_argument("--path_ckpt", required=True, help="a run's checkpoint (ckpt_violet_*.pt)")
    ap.add_argument("--config", help="settings the checkpoint was trained with (default: its run's args.json)")
    ap.add_argument("--tsv", help="a frame TSV (with .lineidx or .id2lineidx.pkl), or a folder of video files, "
                                  "to read --key videos from")
    ap.add_argument("--key", nargs="+", default=[], help="video ids in --tsv")
    ap.add_argument("--question", help="open-ended question; with --options, multiple choice")
    ap.add_argument("--options", nargs="+", help="answer options of a multiple-choice question")
    ap.add_argument("--answer", nargs="+", help="expected answer(s), one for all videos or one per video "
                                                "(marks the predictions right or wrong)")
    ap.add_argument("--text", help="rank the videos for this text")
    ap.add_argument("--caption", action="store_true", help="decode a caption per video")
    ap.add_argument("--n_answers", type=int, default=5, help="open-ended answers shown per video")
    ap.add_argument("--sample", type=int, help="frames extracted per video file (default: as the run's store)")
    ap.add_argument("--member", help="multi-task checkpoints: the task whose settings to use")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if there is one)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--grid", metavar="OUT.png", help="draw the videos' frames with the predictions")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return ap


def split_overrides(argv, ap):
    """(this tool's arguments, `--KEY VALUE` config overrides): any config key not an option here."""
    own = set(ap._option_string_actions)
    args, over, i = [], [], 0
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if tok.startswith("--") and name not in own:
            if name[2:] not in DEFAULTS:
                close = difflib.get_close_matches(name, sorted(own) + [f"--{k}" for k in DEFAULTS], n=1)
                ap.error(f"unknown option {name}" + (f"; did you mean {close[0]}?" if close else ""))
            over.append(tok)
            if "=" not in tok and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                over.append(argv[i + 1])
                i += 1
        else:
            args.append(tok)
        i += 1
    return args, over


def mode_of(a, ap):
    modes = [m for m, on in (("qa", a.question is not None and not a.options), ("mc", bool(a.options)),
                              ("text", a.text is not None), ("caption", a.caption)) if on]
    if a.options and a.question is None:
        ap.error("--options needs --question")
    if len(modes) != 1:
        ap.error("choose one of --question, --question with --options, --text, --caption")
    if not a.videos and not a.key:
        ap.error("give video files, or --tsv FILE --key K")
    if a.key and not a.tsv:
        ap.error("--key needs --tsv")
    if (a.sample is not None and a.sample < 1) or a.n_answers < 1:
        ap.error("--sample and --n_answers must be >= 1")
    return modes[0]


def device_of(name):
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no GPU is available here (use --device cpu)")
    try:
        return str(torch.device(name))
    except RuntimeError as e:
        raise ConfigError(f"--device {name}: {e}") from None


def expected_answers(a, n):
    if not a.answer:
        return [None] * n
    if len(a.answer) not in (1, n):
        raise ConfigError(f"--answer: give one answer for all videos or one per video ({n}), got {len(a.answer)}")
    return a.answer * n if len(a.answer) == 1 else list(a.answer)


# ---------------------------------------------------------------------------- predicting
def predict(p, mode, videos, a):
    """The result dict of one mode (see `--json`)."""
    out = {"checkpoint": p.run_cfg.path_ckpt, "mode": mode, "family": p.family,
           "frames": {"extracted": p.sample, "size_frame": p.cfg.size_frame, "size_img": p.cfg.size_img}}
    if mode == "qa":
        res = p.answer(videos, a.question, a.n_answers)
        out["question"] = a.question
        out["results"] = []
        for v, top, exp in zip(videos, res, expected_answers(a, len(videos))):
            r = {"video": v.name, "source": v.source, "answers": [{"answer": w, "p": round(q, 5)} for w, q in top]}
            if exp is not None:
                r.update(expected=exp, correct=top[0][0] == exp.strip().lower())
            out["results"].append(r)
    elif mode == "mc":
        from lavender.tasks.qa_mc import mc_mode
        res = p.choose(videos, a.question, a.options)
        out.update(question=a.question, options=a.options, mc_mode=mc_mode(p.cfg), results=[])
        for v, probs, exp in zip(videos, res, expected_answers(a, len(videos))):
            best = max(range(len(probs)), key=probs.__getitem__)
            r = {"video": v.name, "source": v.source, "choice": best, "option": a.options[best],
                 "p": [round(q, 5) for q in probs]}
            if exp is not None:
                r.update(expected=exp, correct=exp in (a.options[best], str(best)))
            out["results"].append(r)
    elif mode == "text":
        scores = p.rank(videos, a.text)
        order = sorted(range(len(videos)), key=lambda i: -scores[i])
        out.update(text=a.text, results=[{"rank": r + 1, "video": videos[i].name, "source": videos[i].source,
                                          "score": round(scores[i], 5)} for r, i in enumerate(order)])
    else:
        res = p.caption(videos)
        out["results"] = [{"video": v.name, "source": v.source, "caption": c, "conf": round(q, 5)}
                          for v, (c, q) in zip(videos, res)]
    return out


def table(out):
    """A readable table of a result dict."""
    mode, rows = out["mode"], out["results"]
    w = max([5] + [len(r["video"]) for r in rows])

    def mark(r):
        return "" if "correct" not in r else ("  right" if r["correct"] else f"  wrong (expected {r['expected']})")
    if mode == "qa":
        lines = [f"question: {out['question']}", f"{'video':<{w}}  {'answer':<12} {'p':>6}  next"]
        for r in rows:
            top, rest = r["answers"][0], r["answers"][1:]
            nxt = ", ".join(f"{x['answer']} {x['p']:.3f}" for x in rest)
            lines.append(f"{r['video']:<{w}}  {top['answer']:<12} {top['p']:>6.3f}  {nxt}{mark(r)}")
    elif mode == "mc":
        lines = [f"question: {out['question']}  ({out['mc_mode']} phrasing: "
                 + ("probability over the options)" if out["mc_mode"] == "digit" else "P(true) of each option)")]
        lines += [f"  [{i}] {o}" for i, o in enumerate(out["options"])]
        lines.append(f"{'video':<{w}}  choice  " + " ".join(f"{f'[{i}]':>6}" for i in range(len(out["options"]))))
        for r in rows:
            lines.append(f"{r['video']:<{w}}  [{r['choice']}]     " + " ".join(f"{q:>6.3f}" for q in r["p"]) + mark(r))
    elif mode == "text":
        lines = [f"text: {out['text']}", f"{'rank':>4}  {'score':>6}  video"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['video']}" for r in rows]
    else:
        lines = [f"{'video':<{w}}  {'conf':>5}  caption"]
        lines += [f"{r['video']:<{w}}  {r['conf']:>5.3f}  {r['caption']}" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- pictures
def grid_rows(out):
    """(result, title, lines, colour) per video drawn, in the order of the results."""
    mode, rows = out["mode"], out["results"][:GRID_ROWS[out["mode"]]]
    res = []
    for r in rows:
        colour = None if "correct" not in r else ("tab:green" if r["correct"] else "tab:red")
        if mode == "qa":
            top = r["answers"]
            lines = [f"answer: {top[0]['answer']} ({top[0]['p']:.2f})"]
            if "expected" in r:
                lines.append(f"expected: {r['expected']}")
            lines.append("top-3: " + ", ".join(f"{x['answer']} {x['p']:.2f}" for x in top[:3]))
        elif mode == "mc":
            order = sorted(range(len(r["p"])), key=lambda i: -r["p"][i])[:3]
            lines = [f"answer: [{r['choice']}] {r['option']}"]
            if "expected" in r:
                lines.append(f"expected: {r['expected']}")
            lines.append("top-3: " + ", ".join(f"[{i}] {r['p'][i]:.2f}" for i in order))
        elif mode == "text":
            lines = [f"rank {r['rank']}: score {r['score']:.3f}"]
        else:
            lines = [r["caption"], f"conf {r['conf']:.2f}"]
        res.append((r, r["video"], lines, colour))
    return res


def draw_grid(p, videos, out, path):
    """One row per video: the frames the model saw, its name and the prediction; a header with the
    question or text. matplotlib (headless) is needed only here."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from lavender.data.transforms import to_images
    from lavender.fileio import atomic_write

    by_name = {(v.name, v.source): v for v in videos}
    rows = grid_rows(out)
    strips = []
    for r, _, _, _ in rows:
        frames = to_images(p.clip(by_name[(r["video"], r["source"])]))
        gap = np.full((frames.shape[1], max(1, frames.shape[2] // 16), 3), 255, np.uint8)
        strips.append(np.concatenate([x for f in frames for x in (f, gap)][:-1], 1))
    aspect = strips[0].shape[1] / strips[0].shape[0]
    h, text_w = 1.5, 3.4  # inches: row height, text column
    fig = plt.figure(figsize=(h * aspect + text_w, h * len(rows) + 0.7))
    head = {"qa": "Q: {question}", "mc": "Q: {question}", "text": "text: {text}"}.get(out["mode"], "captions")
    fig.suptitle(head.format(**out), fontsize=11, x=0.02, ha="left")
    gs = fig.add_gridspec(len(rows), 2, width_ratios=[h * aspect, text_w], left=0.01, right=0.99,
                          top=1 - 0.6 / fig.get_figheight(), bottom=0.02, wspace=0.03, hspace=0.25)
    for k, ((r, title, lines, colour), strip) in enumerate(zip(rows, strips)):
        ax = fig.add_subplot(gs[k, 0])
        ax.imshow(strip, interpolation="nearest" if strip.shape[0] < 128 else "antialiased")
        ax.set_axis_off()
        tx = fig.add_subplot(gs[k, 1])
        tx.set_axis_off()
        tx.text(0, 0.85, title, fontsize=9, weight="bold", va="top", transform=tx.transAxes)
        tx.text(0, 0.55, "\n".join(lines), fontsize=9, va="top", color=colour or "black", transform=tx.transAxes)
    suffix = Path(path).suffix.lstrip(".") or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=suffix, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = parser()
    own, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv), ap)
    a = ap.parse_args(own)
    mode = mode_of(a, ap)

    import logging

    from lavender.inference import Predictor, read_inputs
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    family = {"qa": "qaoe", "mc": "qamc", "text": "retrieval", "caption": "captioning"}[mode]
    if not os.path.isfile(a.path_ckpt):  # the preflight: every missing input at once, one `error:` line each
        missing = [f"{v}: no such file" for v in a.videos if not os.path.exists(v)]
        missing += [f"{a.tsv}: no such frame TSV or folder"] if a.tsv and not os.path.exists(a.tsv) else []
        raise FileNotFoundError("\n".join([f"checkpoint not found: {a.path_ckpt}"] + [f"error: {m}" for m in missing]))
    p = Predictor.from_checkpoint(a.path_ckpt, a.config, overrides, device_of(a.device), family, a.member)
    p.sample = a.sample
    videos, errors = read_inputs(p, a.videos, a.tsv, a.key)
    if errors and not p.run_cfg.skip_bad:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    for e in errors:
        print(f"skipped (skip_bad): {e}", file=sys.stderr)
    if not videos:
        raise DataError("no video left to predict on")
    if mode == "text" and len(videos) < 2:
        print("note: --text ranks several videos; with one video it only scores it", file=sys.stderr)
    out = predict(p, mode, videos, a)
    if errors:
        out["skipped"] = errors
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for note in [p.note] + p.notes:
            if note:
                print(f"note: {note}", file=sys.stderr)
        print(f"frames: {p.sample} extracted per video file, {p.cfg.size_frame} sampled at {p.cfg.size_img} px",
              file=sys.stderr)
        print(table(out))
    if a.grid:
        draw_grid(p, videos, out, a.grid)
        print(f"wrote {a.grid}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
