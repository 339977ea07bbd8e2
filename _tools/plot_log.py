"""Training curves of one or more runs in one PNG.

    python _tools/plot_log.py RUN_DIR [RUN_DIR ...] --output curves.png

RUN_DIR is a run's output folder (the one holding ``log.json``; passing the file itself works too).
Per step, from ``log_steps.jsonl``: the loss, the learning rate (one line per distinct parameter
group; groups with the same schedule share a line) and every other numeric key (e.g. max_mem_gb).
Per epoch, from ``log.json``: one small axis per metric (``ac_1_vl`` and ``ac_1_ts`` both go to
``ac_1``), train/val/test as line styles. Runs are overlaid as colours labelled by folder name.
Each y axis says its unit (accuracy 0-1, recall in %, rank, loss, ...); counts (``n``, ``n_invalid``,
``n_text``, ...) come after the metrics, titled as counts. A run that trained but logged no step (it
took fewer optimizer steps than its ``logging_steps``) is named in a note: its loss is only the epoch
mean ``ls``. A run needs at least one of the two files. Needs matplotlib, which training does not.
The same values are in the run's TensorBoard event files (``tensorboard --logdir RUN_DIR/..``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.errors import DataError  # noqa: E402
from lavender.fileio import atomic_write  # noqa: E402

SPLITS = {"tr": "train", "vl": "val", "ts": "test"}  # log.json key suffix -> split (trainer's tags)
SPLIT_STYLE = {"train": (":", "^"), "val": ("-", "o"), "test": ("--", "s"), "": ("-", "o")}  # line, marker
STEP_FIRST = ("loss", "lr")  # these per-step panels lead; the rest follow in file order
NCOLS = 4


def is_count(name):
    """n, n_invalid, n_text, tgif_n, n_skipped_steps...: numbers of things, not metrics."""
    return re.search(r"(^|_)n(_|$)", name) is not None


def unit_of(name):
    """The y-axis label of a panel: what the metric measures, in which unit."""
    low = name.lower()
    if is_count(low):
        return "count"
    if "r@" in low:
        return "recall (%)"
    if "rank" in low:
        return "rank (1 = first)"
    if low == "lr":
        return "learning rate"
    if "mem_gb" in low:
        return "GiB"
    if low.startswith("ls") or "loss" in low or low.endswith("_ls"):
        return "loss (cross-entropy)"
    if any(m in low for m in ("cider", "bleu", "meteor", "rouge")):
        return "caption score"
    if low == "mean" or low.endswith("_mean"):
        return "mean of the tasks' main metrics (0-1)"
    if re.search(r"(^|_)ac(_|$)", low):
        return "accuracy (0-1)"
    return "value"


def _number(v):
    """float of a JSON number; NaN for null; TypeError for anything else (bools are not numbers)."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return float(v)


def _load_json(path, text, line=None):
    """json.loads; a DataError naming the file and line (`line`: of a one-line record) if invalid."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{line or e.lineno}: not valid JSON ({e.msg})") from None


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def read_steps(path):
    """log_steps.jsonl -> {panel: {line label: (steps, values)}}.

    A step logged twice (a resumed run appends again) keeps its last record. List values (the
    learning rate of each parameter group) become one line per distinct series, labelled by group.
    """
    by_step = {}
    for i, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        rec = _load_json(path, line, i)
        if not isinstance(rec, dict) or isinstance(rec.get("step"), bool) \
                or not isinstance(rec.get("step"), (int, float)):
            raise DataError(f"{path}:{i}: expected an object with a numeric 'step'")
        by_step[rec["step"]] = rec
    steps = sorted(by_step)
    keys = []
    for s in steps:
        keys += [k for k in by_step[s] if k not in ("epoch", "step", "task") and k not in keys]
    panels = {}
    for k in keys:
        width = max(len(v) if isinstance(v, list) else 1 for v in (by_step[s].get(k) for s in steps))
        if width == 0:  # only empty lists
            continue
        cols = [[] for _ in range(width)]
        try:
            for s in steps:
                v = by_step[s].get(k)
                v = v if isinstance(v, list) else [v] * width
                for j in range(width):
                    cols[j].append(_number(v[j]) if j < len(v) else math.nan)
        except TypeError:
            print(f"note: {path}: '{k}' is not numeric, not plotted", file=sys.stderr)
            continue
        if width == 1:
            panels[k] = {"": (steps, cols[0])}
            continue
        distinct = {}  # identical series (e.g. decay / no-decay groups of one lr) share one line
        for j, c in enumerate(cols):
            distinct.setdefault(tuple(c), []).append(j)
        peak = {c: max((abs(v) for v in c if not math.isnan(v)), default=0.0) for c in distinct}
        low = min((p for p in peak.values() if p > 0), default=0.0)
        panels[k] = {}
        for c, g in distinct.items():  # "groups 0, 2 (x4)": the visual backbone's lr multiplier shows
            ratio = f" (x{peak[c] / low:.3g})" if low and peak[c] / low > 1.0001 else ""
            panels[k][f"group{'s' if len(g) > 1 else ''} {', '.join(map(str, g))}{ratio}"] = (steps, list(c))
    return panels


def split_key(key):
    """'ac_1_vl' -> ('ac_1', 'val'); a key without a split suffix -> (key, '')."""
    base, _, tag = key.rpartition("_")
    return (base, SPLITS[tag]) if base and tag in SPLITS else (key, "")


def read_epochs(path):
    """log.json (a dict of equal-length lists, 'epoch' among them) -> {metric: {split: (epochs, values)}}."""
    log = _load_json(path, _read_text(path))
    if not isinstance(log, dict) or not isinstance(log.get("epoch"), list) \
            or not all(isinstance(v, list) for v in log.values()):
        raise DataError(f"{path}: expected a JSON object of lists with an 'epoch' list")
    try:
        epochs = [_number(e) for e in log["epoch"]]
    except TypeError:
        raise DataError(f"{path}: key 'epoch' holds a value that is not a number") from None
    panels = {}
    for k, vals in log.items():
        if k == "epoch":
            continue
        if len(vals) != len(epochs):
            raise DataError(f"{path}: key '{k}' has {len(vals)} values for {len(epochs)} epochs")
        try:
            ys = [_number(v) for v in vals]
        except TypeError:
            print(f"note: {path}: '{k}' is not numeric, not plotted", file=sys.stderr)
            continue
        base, split = split_key(k)
        panels.setdefault(base, {})[split] = (epochs, ys)
    return panels


def no_step_note(d, steps, epochs):
    """A note when a run trained (its log has `ls`) but logged no optimizer step, else None."""
    if steps or "ls" not in epochs:
        return None
    every = "its logging_steps"
    try:
        with open(d / "args.json") as f:
            every = f"logging_steps = {json.load(f)['logging_steps']}"
    except (OSError, ValueError, KeyError):
        pass
    return (f"note: {d}: no step was logged (the run took fewer optimizer steps than {every}): no per-step "
            f"loss is drawn, only the epoch mean ls; a smaller --logging_steps logs more")


def load_run(run_dir):
    """(per-step panels, per-epoch panels) of one run folder; DataError when it has neither file."""
    d = Path(run_dir)
    if d.is_file() and d.name in ("log.json", "log_steps.jsonl"):
        d = d.parent
    if not d.is_dir():
        raise DataError(f"{run_dir}: no such run folder")
    f_steps, f_log = d / "log_steps.jsonl", d / "log.json"
    if not f_steps.exists() and not f_log.exists():
        raise DataError(f"{run_dir}: neither log.json nor log_steps.jsonl (give a run's output folder)")
    steps, epochs = (read_steps(f_steps) if f_steps.exists() else {}), (read_epochs(f_log) if f_log.exists() else {})
    note = no_step_note(d, steps, epochs)
    if note:
        print(note, file=sys.stderr)
    return steps, epochs


def run_labels(run_dirs):
    """Folder names; as many trailing path parts as it takes to tell the runs apart."""
    parts = [Path(os.path.abspath(r)).parts for r in run_dirs]
    parts = [p[:-1] if p[-1] in ("log.json", "log_steps.jsonl") else p for p in parts]
    for n in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def smooth(ys, window):
    """Centred moving average ignoring NaNs (a window of 1 or less returns the values)."""
    import numpy as np
    y = np.asarray(ys, float)
    if window <= 1 or len(y) < 3:
        return y
    ok = ~np.isnan(y)
    k = np.ones(int(window))
    num = np.convolve(np.where(ok, y, 0.0), k, "same")
    den = np.convolve(ok.astype(float), k, "same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / den, np.nan)


def build_figure(runs, labels, smooth_window=None):
    """One Figure: an axis per panel (per-step ones first), runs as colours; returns (fig, panel titles)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    step_names, epoch_names = [], []
    for steps, epochs in runs:
        step_names += [k for k in steps if k not in step_names]
        epoch_names += [k for k in epochs if k not in epoch_names]
    step_names.sort(key=lambda k: STEP_FIRST.index(k) if k in STEP_FIRST else len(STEP_FIRST))
    panels = [(k, "step") for k in step_names] + [(k, "epoch") for k in epoch_names]
    panels.sort(key=lambda p: is_count(p[0]))  # metrics first, then the counts (a stable sort)
    if not panels:
        raise DataError(f"nothing to plot: no numeric values in {', '.join(labels)}")
    ncols = min(NCOLS, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.0 * ncols, 2.3 * nrows + 0.5), layout="constrained", dpi=100)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    for ax in grid.flat[len(panels):]:
        fig.delaxes(ax)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    splits_seen, first = [], {}
    for ax, (name, kind) in zip(grid.flat, panels):
        if kind in first:  # every per-step / per-epoch axis spans the same steps / epochs
            ax.sharex(first[kind])
        first.setdefault(kind, ax)
        ax.set_title(f"{name}" + (" (per step)" if kind == "step" else "") + (" (count)" if is_count(name) else ""),
                     fontsize=10)
        ax.set_xlabel(kind, fontsize=9, labelpad=1)
        ax.set_ylabel(unit_of(name), fontsize=8, labelpad=1)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, lw=0.5)
        group_styles, values = {}, []
        for (steps, epochs), colour in zip(runs, colours):
            lines = (steps if kind == "step" else epochs).get(name, {})
            for line, (xs, ys) in lines.items():
                values += [v for v in ys if not math.isnan(v)]
                if kind == "epoch":
                    splits_seen += [line] if line not in splits_seen else []
                    ls, marker = SPLIT_STYLE[line]
                    ax.plot(xs, ys, ls, color=colour, marker=marker, ms=3.5, lw=1.3)
                    continue
                style = group_styles.setdefault(line, ["-", "--", ":", "-."][len(group_styles) % 4])
                w = smooth_window if smooth_window is not None else (len(ys) // 25 if len(ys) >= 100 else 1)
                if "loss" in name and w > 1:  # the raw series faint, its moving average on top
                    ax.plot(xs, ys, style, color=colour, lw=0.6, alpha=0.3)
                    ys = smooth(ys, w)
                ax.plot(xs, ys, style, color=colour, lw=1.3)
        if kind == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if values and all(float(v).is_integer() for v in values):  # counts: no 343.75 ticks
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            if max(values) - min(values) < 2:
                ax.set_ylim(min(values) - 1, max(values) + 1)
        if len(group_styles) > 1:  # e.g. lr: the visual backbone's groups run at a multiple
            ax.legend([Line2D([], [], color="0.3", ls=s) for s in group_styles.values()], list(group_styles),
                      fontsize=7, frameon=False, handlelength=2)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 4))  # 5e-4, not 0.0005, on small axes
        ax.yaxis.get_offset_text().set_fontsize(8)
    handles = [Line2D([], [], color=c, lw=2) for c in colours]
    names = list(labels)
    for s in ("train", "val", "test", ""):
        if s in splits_seen and (s or len(splits_seen) > 1):
            ls, marker = SPLIT_STYLE[s]
            handles.append(Line2D([], [], color="0.3", ls=ls, marker=marker, ms=3.5))
            names.append(s or "(no split)")
    if "epoch" in first:  # a single epoch: a unit-wide axis, so its ticks stay integers
        lo, hi = first["epoch"].get_xlim()
        if hi - lo < 2:
            first["epoch"].set_xlim((lo + hi) / 2 - 1, (lo + hi) / 2 + 1)
    fig.legend(handles, names, loc="outside upper center", ncol=min(len(names), 8), fontsize=9, frameon=False)
    return fig, [n for n, _ in panels]


def plot_runs(run_dirs, output, smooth_window=None):
    """Read the runs, draw them, save to `output` (atomically); returns (fig, panel titles)."""
    runs = [load_run(r) for r in run_dirs]
    fig, titles = build_figure(runs, run_labels(run_dirs), smooth_window)
    fmt = Path(output).suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        raise DataError(f"{output}: cannot write a '.{fmt}' picture (use .png, .svg or .pdf)")
    try:
        with atomic_write(output, "wb") as f:
            fig.savefig(f, format=fmt)
    except OSError as e:
        raise DataError(f"{output}: cannot write ({e})") from None
    return fig, titles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run's output folder")
    ap.add_argument("--output", default="curves.png", help="picture to write (.png, .svg, .pdf)")
    ap.add_argument("--smooth", type=int, default=None, metavar="N",
                    help="moving average of N points over per-step losses (default: 1/25 of the "
                         "points when there are 100 or more, else none)")
    a = ap.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DataError("plot_log.py needs matplotlib: pip install matplotlib") from None
    _, titles = plot_runs(a.run_dirs, a.output, a.smooth)
    print(f"wrote {a.output}: {len(titles)} axes ({', '.join(titles)}) for {len(a.run_dirs)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
