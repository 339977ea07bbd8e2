"""A folder of videos + a simple annotation file -> a dataset in the original's formats and a ready config
(docs/your-videos.md).

    python _tools/prepare_dataset.py --videos my_clips/ --annotations qa.csv --name mine
    python main_qaoe_mlm.py --config _datasets/mine/args_mine-qa.json

Annotations: CSV with a header, or JSON lines, one row per example; `video` is a file name in --videos
(with or without extension), `split` (train / val / test) is optional: without it videos are split
--val / --test by a seeded draw.
    qa:         video,question,answer[,split]               -> txt_NAME-qa.json (answer_text)
    mc:         video,question,option_0,...,option_K,answer[,split]   (answer: index or option text)
    retrieval:  video,caption[,split]                       -> txt_NAME-retrieval.json
    caption:    video,caption[,split]                       -> NAME-cap/{split}.yaml (SwinBERT's layout)
--kind auto picks qa / mc / retrieval from the header.

Writes into --out (default _datasets/NAME): the frame store img_NAME.tsv + .lineidx + .id2lineidx.pkl
(--sample frames per video, as _tools/extract_video-frame.py; --store files writes none: the config reads
the video files themselves through video_dir), the annotations, args_NAME-KIND.json from the template
_args/args_custom.json (packaged MiniLM + a small Video Swin: no external weights) or, with --weights
real, _args/args_custom_real.json (bert-base-uncased, Kinetics Video Swin, the LAVENDER checkpoint),
and prepare_report.json. Extraction runs in --workers processes with a progress bar and is resumable:
rows already in the partial store are kept when the command runs again. The report lists the videos
skipped and why, the rows dropped and why, answers that are not one vocabulary token (the share of each
split), split sizes, and the batch size that gives a sensible number of steps per epoch.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import worker_pool  # noqa: E402

from lavender.run import main_guard  # noqa: E402
from lavender.data.tsv import scan_rows  # noqa: E402
from lavender.data.tsv_index import id2lineidx_path_for, lineidx_path_for, save_id2lineidx, write_lineidx  # noqa: E402
from lavender.data.video_folder import video_ids  # noqa: E402
from lavender.data.video_files import read_video_fields  # noqa: E402
from lavender.errors import DataError  # noqa: E402
from lavender.fileio import atomic_json  # noqa: E402
from lavender.paths import REPO_ROOT  # noqa: E402

TYPES = {"qa": "qaoe", "mc": "qamc", "retrieval": "retrieval", "caption": "captioning"}
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
SPLIT_ORDER = ("train", "val", "test")
MIN_STEPS = 20  # steps per epoch the suggested batch aims at


# ---------------------------------------------------------------------------- annotations
def read_rows(path):
    """[(line number, {field: text})] of a CSV (header) or JSON-lines file."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(f"annotation file {path} not found")
    with open(path, encoding="utf-8-sig", newline="") as f:
        if path.endswith((".jsonl", ".ndjson")):
            rows = []
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}:{n}: expected a JSON object per line")
                    rows.append((n, {str(k).strip(): v for k, v in obj.items()}))
            return rows
        reader = csv.DictReader(f)
        if not reader.fieldnames or "video" not in [h.strip() for h in reader.fieldnames]:
            raise DataError(f"{path}: the first line must be a header naming the columns, one of them 'video'")
        return [(n + 2, {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in r.items()})
                for n, r in enumerate(reader)]


def option_fields(fields):
    """The option columns, in order (option_0, option_1, ... or options as one JSON list)."""
    return sorted((f for f in fields if f.startswith("option") and f != "options"),
                  key=lambda f: int("".join(c for c in f if c.isdigit()) or 0))


def detect_kind(rows):
    fields = set().union(*(r.keys() for _, r in rows)) if rows else set()
    if "question" in fields and (option_fields(fields) or "options" in fields):
        return "mc"
    if "question" in fields:
        return "qa"
    if "caption" in fields:
        return "retrieval"
    raise DataError(f"cannot tell the task from the columns {sorted(fields)}: give --kind")


def parse_rows(rows, kind, path):
    """(examples, dropped): examples are dicts with video, split and the kind's fields; dropped [(line, why)]."""
    out, dropped = [], []
    for line, r in rows:
        def text(key):
            v = r.get(key)
            return str(v).strip() if v is not None else ""
        vid = Path(text("video")).stem if text("video") else ""
        split = text("split").lower()
        why = "no video" if not vid else None
        if split and split not in SPLITS:
            why = f"split {split!r} is not train, val or test"
        ex = {"video": vid, "split": SPLITS.get(split), "line": line}
        if kind in ("qa", "mc"):
            ex["question"] = text("question")
        if kind == "qa":
            ex["answer"] = text("answer")
            why = why or ("no question" if not ex["question"] else None if ex["answer"] else "no answer")
        elif kind == "mc":
            opts = r.get("options")
            try:
                opts = [str(o).strip() for o in (json.loads(opts) if isinstance(opts, str) else opts)] if opts else \
                    [text(f) for f in option_fields(r)]
            except (ValueError, TypeError):
                why, opts = why or "options is not a JSON list", []
            ans = text("answer")
            idx = int(ans) if ans.isdigit() else next((i for i, o in enumerate(opts) if o.lower() == ans.lower()), -1)
            ex.update(options=opts, answer=idx)
            why = why or ("an empty option" if any(not o for o in opts) or len(opts) < 2 else
                          None if 0 <= idx < len(opts) else f"answer {ans!r} is neither an option nor its index")
        else:
            ex["caption"] = text("caption")
            why = why or (None if ex["caption"] else "no caption")
        if why:
            dropped.append((line, why))
        else:
            out.append(ex)
    if kind == "mc" and out:
        k = collections.Counter(len(e["options"]) for e in out).most_common(1)[0][0]
        dropped += [(e["line"], f"{len(e['options'])} options, the others have {k}") for e in out if len(e["options"]) != k]
        out = [e for e in out if len(e["options"]) == k]
    if not out:
        raise DataError(f"{path}: no usable rows ({len(dropped)} dropped, e.g. line {dropped[0][0]}: {dropped[0][1]})"
                        if dropped else f"{path}: no rows")
    return out, dropped


def assign_splits(examples, val, test, seed):
    """Examples without a split: the split another row gives their video, else their videos drawn into val /
    test / train (all examples of a video together)."""
    known = {e["video"]: e["split"] for e in examples if e["split"]}
    free = sorted({e["video"] for e in examples if e["video"] not in known})
    random.Random(seed).shuffle(free)
    n_val = max(1, round(val * len(free))) if val > 0 and len(free) >= 3 else 0
    n_test = max(1, round(test * len(free))) if test > 0 and len(free) >= 3 else 0
    split = {v: "val" for v in free[:n_val]}
    split.update({v: "test" for v in free[n_val:n_val + n_test]})
    for e in examples:
        e["split"] = e["split"] or known.get(e["video"]) or split.get(e["video"], "train")


# ---------------------------------------------------------------------------- frames
def _extract(job):
    vid, path, sample = job
    try:
        return vid, read_video_fields(path, sample)[0], None
    except DataError as e:
        return vid, None, str(e)
    except Exception as e:  # never let one file stop the run
        return vid, None, f"unreadable ({type(e).__name__}: {e})"


def _probe(job):
    """A video file opens and its first frame decodes (--store files: training decodes the rest)."""
    vid, path, _ = job
    try:
        import av
        if os.path.getsize(path) == 0:
            return vid, None, "empty file (0 bytes)"
        with av.open(path) as c:
            if not c.streams.video:
                return vid, None, "no video stream"
            if next(c.decode(c.streams.video[0]), None) is None:
                return vid, None, "zero frames"
        return vid, [], None
    except Exception as e:
        return vid, None, f"unreadable ({type(e).__name__}: {e})"


def done_rows(partial):
    """Video ids whose rows are complete in a partial store; a row cut short by a kill is removed."""
    if not os.path.exists(partial):
        return set()
    keep, done = 0, set()
    for off, line in scan_rows(partial):
        if not line.endswith(b"\n"):
            break
        done.add(line.split(b"\t", 1)[0].decode())
        keep = off + len(line)
    with open(partial, "r+b") as f:
        f.truncate(keep)
    return done


def build_store(files, tsv, sample, workers, progress):
    """Extract the frames of `files` {vid: path} into `tsv` (+ indexes); resumable. Returns {vid: why} skipped."""
    partial = tsv + ".partial"
    done = done_rows(partial)
    jobs = [(v, p, sample) for v, p in sorted(files.items()) if v not in done]
    if done:
        print(f"resuming: {len(done)} videos already in {partial}, {len(jobs)} to go")
    skipped = {}
    desc = f"frames of {len(jobs)} videos" if progress else None
    with open(partial, "ab") as f, worker_pool.imap(_extract, jobs, workers, ordered=False, desc=desc) as it:
        for vid, fields, why in it:
            if fields is None:
                skipped[vid] = why
                continue
            f.write(("\t".join([vid] + fields) + "\n").encode())
            f.flush()
    key2off, offsets = {}, []
    for off, line in scan_rows(partial):
        offsets.append(off)
        key2off[line.split(b"\t", 1)[0].decode()] = off
    os.replace(partial, tsv)
    write_lineidx(lineidx_path_for(tsv), offsets)
    save_id2lineidx(id2lineidx_path_for(tsv), key2off)
    return skipped


# ---------------------------------------------------------------------------- outputs
def write_annotations(examples, kind, out, name, task):
    """txt_TASK.json (captioning: the SwinBERT layout); returns the captioning yaml keys of the config."""
    splits = {s: [e for e in examples if e["split"] == s] for s in SPLIT_ORDER}
    if kind == "caption":
        return write_caption_layout(splits, out, name, task)
    items = {}
    for s, exs in splits.items():
        if kind == "qa":
            items[s] = [{"video": e["video"], "question": e["question"], "answer_text": e["answer"]} for e in exs]
        elif kind == "mc":
            items[s] = [{"video": e["video"], "question": e["question"], "answer": e["answer"],
                         **{f"option_{i}": o for i, o in enumerate(e["options"])}} for e in exs]
        else:
            items[s] = [{"video": e["video"], "caption": e["caption"]} for e in exs]
    atomic_json({s: v for s, v in items.items() if v}, os.path.join(out, f"txt_{task}.json"))
    return {}


def write_caption_layout(splits, out, name, task):
    """SwinBERT's layout under `out/task/`: per split a yaml, a caption TSV, a linelist and COCO references;
    the frames are the dataset's img TSV (frames from column 1: the config sets frame_column 1)."""
    from lavender.data.tsv import write_tsv
    folder = os.path.join(out, task)
    yamls = {}
    for s, exs in splits.items():
        if not exs:
            continue
        caps = collections.OrderedDict()
        for e in exs:
            caps.setdefault(e["video"], []).append(e["caption"])
        write_tsv(os.path.join(folder, f"{s}.caption.tsv"),
                  ([v, json.dumps([{"caption": c} for c in cs])] for v, cs in caps.items()))
        with open(os.path.join(folder, f"{s}.linelist.tsv"), "w") as f:
            f.writelines(f"{i}\t{j}\n" for i, cs in enumerate(caps.values()) for j in range(len(cs)))
        atomic_json({"images": [{"id": v, "file_name": v} for v in caps],
                     "annotations": [{"image_id": v, "caption": c, "id": n} for n, (v, c) in
                                     enumerate((v, c) for v, cs in caps.items() for c in cs)]},
                    os.path.join(folder, f"{s}.caption_coco_format.json"))
        with open(os.path.join(folder, f"{s}.yaml"), "w") as f:
            f.write(f"img: ../img_{name}.tsv\ncaption: {s}.caption.tsv\n"
                    f"caption_linelist: {s}.linelist.tsv\ncaption_coco_format: {s}.caption_coco_format.json\n")
        yamls[f"{s}_yaml"] = f"{task}/{s}.yaml"
    return yamls


def text_lengths(examples, kind, tok):
    """Tokens of each example's text as the family lays it out (question, options, caption)."""
    def n(t):
        return len(tok.tokenize(t))
    if kind == "mc":
        return [n(e["question"] + "".join(f" [SEP] option {i}: {o}" for i, o in enumerate(e["options"])))
                for e in examples]
    return [n(e["question"] if kind == "qa" else e["caption"]) for e in examples]


def answer_report(examples, tok):
    """QA: answers that are not one vocabulary token (they get no label: the model cannot answer them)."""
    bad = collections.Counter()
    per_split = collections.Counter()
    totals = collections.Counter(e["split"] for e in examples)
    for e in examples:
        t = tok.tokenize(e["answer"])
        if len(t) != 1 or t[0] == tok.unk_token:
            bad[e["answer"]] += 1
            per_split[e["split"]] += 1
    return {"n": sum(bad.values()), "share": {s: round(per_split[s] / totals[s], 4) for s in SPLIT_ORDER if totals[s]},
            "most_common": [[a, n, tok.tokenize(a)] for a, n in bad.most_common(10)]}


def suggest_batch(n_train, max_batch, kind):
    """The largest batch (a power of two up to the template's) that gives at least MIN_STEPS steps per
    epoch; 2 at the least (retrieval matches within a batch)."""
    b = max_batch
    while b > 2 and math.ceil(n_train / b) < MIN_STEPS:
        b //= 2
    return max(b, 2)


def repo_relative(path):
    """A config path: ./relative to the repository root when inside it (configs read paths so), else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO_ROOT)
    return path if rel.startswith("..") else "./" + rel


def make_config(a, kind, task, examples, tok, yamls):
    template = os.path.join(REPO_ROOT, "_args", "args_custom_real.json" if a.weights == "real" else "args_custom.json")
    with open(template) as f:
        cfg = json.load(f)
    n_train = sum(e["split"] == "train" for e in examples)
    lengths = sorted(text_lengths(examples, kind, tok))
    longest = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))] if lengths else 0
    cfg.update(type=TYPES[kind], task=task, dataset=a.name, data_dir=repo_relative(a.out),
               size_batch=suggest_batch(n_train, cfg["size_batch"], kind),
               size_frame=min(cfg["size_frame"], a.sample), size_txt=max(20, min(100, longest + 4)))
    if kind == "mc":
        cfg.update(size_option=len(examples[0]["options"]), mc_mode=a.mc_mode)
    if kind == "caption":
        cfg.update(yamls, frame_column=1, max_gen_length=max(10, min(50, longest + 4)),
                   eval_splits=[s for s in ("val", "test") if f"{s}_yaml" in yamls])
    else:
        cfg["eval_splits"] = [s for s in ("val", "test") if any(e["split"] == s for e in examples)]
    if a.store == "files":
        cfg.update(video_dir=repo_relative(a.videos), video_sample=a.sample)
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", required=True, help="folder of video files (mp4, webm, avi, mkv, gif, ...)")
    ap.add_argument("--annotations", required=True, help="CSV with a header, or JSON lines (.jsonl)")
    ap.add_argument("--name", required=True, help="dataset name: img_NAME.tsv, task NAME-KIND")
    ap.add_argument("--kind", default="auto", choices=["auto", *TYPES])
    ap.add_argument("--out", default=None, help="output folder (default _datasets/NAME)")
    ap.add_argument("--sample", type=int, default=5, help="frames extracted per video (the original: 5)")
    ap.add_argument("--store", default="tsv", choices=["tsv", "files"],
                    help="tsv: build the frame store; files: the config reads the video files (video_dir)")
    ap.add_argument("--weights", default="packaged", choices=["packaged", "real"],
                    help="config template: packaged MiniLM (no downloads) or the real BERT/Video Swin/LAVENDER")
    ap.add_argument("--val", type=float, default=0.15, help="share of videos for val (rows without a split)")
    ap.add_argument("--test", type=float, default=0.15, help="share of videos for test (rows without a split)")
    ap.add_argument("--mc_mode", default="digit", choices=["digit", "truefalse"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)))
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    if a.sample < 1 or not (0 <= a.val < 1 and 0 <= a.test < 1 and a.val + a.test < 1):
        ap.error("--sample >= 1; 0 <= --val, --test and --val + --test < 1")
    a.out = a.out or os.path.join(REPO_ROOT, "_datasets", a.name)
    files = video_ids(a.videos)
    rows = read_rows(a.annotations)
    kind = detect_kind(rows) if a.kind == "auto" else a.kind
    task = f"{a.name}-{'cap' if kind == 'caption' else kind}"
    examples, dropped = parse_rows(rows, kind, a.annotations)
    dropped += [(e["line"], f"no file for video {e['video']!r} in {a.videos}") for e in examples if e["video"] not in files]
    wanted = {e["video"]: files[e["video"]] for e in examples if e["video"] in files}
    os.makedirs(a.out, exist_ok=True)
    if a.store == "tsv":
        skipped = build_store(wanted, os.path.join(a.out, f"img_{a.name}.tsv"), a.sample, a.workers, not a.no_progress)
    else:
        with worker_pool.imap(_probe, [(v, p, 0) for v, p in wanted.items()], a.workers, ordered=False,
                              desc=None if a.no_progress else "probing videos") as it:
            skipped = {v: why for v, f, why in it if f is None}
    dropped += [(e["line"], f"video {e['video']!r} skipped: {skipped[e['video']]}") for e in examples
                if e["video"] in skipped]
    examples = [e for e in examples if e["video"] in wanted and e["video"] not in skipped]
    if not examples:
        raise DataError(f"no example left: every video was missing or unreadable (see {len(dropped)} dropped rows)")
    assign_splits(examples, a.val, a.test, a.seed)
    from lavender.tokenizer import load_tokenizer
    import logging
    logging.getLogger("lavender").setLevel(logging.WARNING)
    tok = load_tokenizer("bert-base-uncased")
    yamls = write_annotations(examples, kind, a.out, a.name, task)
    cfg = make_config(a, kind, task, examples, tok, yamls)
    config_path = os.path.join(a.out, f"args_{task}.json")
    atomic_json(cfg, config_path, indent=2)
    sizes = {s: {"examples": sum(e["split"] == s for e in examples),
                 "videos": len({e["video"] for e in examples if e["split"] == s})} for s in SPLIT_ORDER}
    steps = math.ceil(sizes["train"]["examples"] / cfg["size_batch"])
    report = {"kind": kind, "task": task, "config": config_path, "splits": sizes,
              "videos": {"used": len({e["video"] for e in examples}), "skipped": skipped,
                         "not_in_annotations": len(set(files) - set(wanted))},
              "dropped_rows": [{"line": n, "why": w} for n, w in sorted(dropped)],
              "size_batch": cfg["size_batch"], "steps_per_epoch": steps, "size_epoch": cfg["size_epoch"]}
    if kind == "qa":
        report["answers_not_one_token"] = answer_report(examples, tok)
    atomic_json(report, os.path.join(a.out, "prepare_report.json"), indent=2)
    print_report(report, a)
    return 0


def print_report(r, a):
    for vid, why in sorted(r["videos"]["skipped"].items()):
        print(f"skipped video {vid}: {why}")
    for d in r["dropped_rows"][:20]:
        print(f"dropped {a.annotations}:{d['line']}: {d['why']}")
    if len(r["dropped_rows"]) > 20:
        print(f"... {len(r['dropped_rows']) - 20} more dropped rows in prepare_report.json")
    s = r["splits"]
    print(f"{r['task']}: {r['videos']['used']} videos used, {len(r['videos']['skipped'])} skipped, "
          f"{len(r['dropped_rows'])} rows dropped; splits " +
          ", ".join(f"{k} {v['examples']} ({v['videos']} videos)" for k, v in s.items()))
    if "answers_not_one_token" in r:
        b = r["answers_not_one_token"]
        shares = ", ".join(f"{k} {100 * v:.1f}%" for k, v in b["share"].items())
        print(f"answers that are not one vocabulary token: {b['n']} ({shares}); the model cannot produce them"
              + (f", e.g. {', '.join(repr(x[0]) for x in b['most_common'][:5])}" if b["n"] else ""))
    print(f"size_batch {r['size_batch']}: {r['steps_per_epoch']} steps per epoch, {r['size_epoch']} epochs = "
          f"{r['steps_per_epoch'] * r['size_epoch']} steps")
    script = {"qaoe": "main_qaoe_mlm.py", "qamc": "main_qamc_mlm.py", "retrieval": "main_retrieval_tsv.py",
              "captioning": "main_caption.py"}[TYPES[r["kind"]]]
    rel = os.path.relpath(r["config"])
    print(f"wrote {r['config']}; train with: python {script} --config {r['config'] if rel.startswith('..') else rel}")


if __name__ == "__main__":
    sys.exit(main_guard(main))
