"""Run every demo over several seeds next to its video-blind baseline, and write the demo tables.

    python _tools/demo_report.py                          # every demo, seeds 0 1 2 -> docs/demo_results.md
    python _tools/demo_report.py --only qa caption --seeds 0 1 2 3 4
    python _tools/demo_report.py --quick                  # a smoke run: 2 steps of every demo, one seed
    python _tools/demo_report.py --report_only            # tables and plots again from the runs kept
    python _tools/demo_report.py --readme README.md       # also the README's demo table (between its markers)

Each demo is driven only through its entry script's command line
(``python main_X.py --config _args/args_demo-X.json --seed N --path_output DIR``) and read back from the
``log.json`` it writes; the baselines come from the demo data's ``README.txt`` (written by
``_tools/make_demo_data.py``) and ``_tools/caption_baseline.py``. So the tool depends on the scripts'
command lines and log keys, not on the package's internals.

Runs go to ``--runs_dir`` (default ``_snapshot/demo_report``), one folder per demo and seed with
``report_run.json`` (command, wall time, load average before/after, fingerprint). A run whose fingerprint
(the bytes of its config, its command line, every ``lavender/**.py``, the entry script and the demo data's
``README.txt``, and the fingerprint of the run it starts from) matches the one kept is not run again
(``--fresh`` runs it anyway): what the tables show is what the code of the recorded commit gives. A demo may
start from another demo's checkpoint of the same seed (``warm_from``); that run comes first.

The report (``--out``, default ``docs/demo_results.md``) has, per demo: the command, the per-seed final
metric, the mean and the min-max over seeds, per epoch; the baseline; the wall time per run; a plot
(``docs/demo_results_{demo}.png``). ``docs/demo_results.json`` holds the same numbers for scripts. Wall
times are measured as they come (the load average beside them says whether the machine was shared).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "_datasets/demo"


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str                 # log.json key, split tag included (ac_1_ts, median_rank_ts, ac_vtm_vl)
    label: str
    higher: bool = True      # is higher better
    percent: bool = False    # a 0-1 fraction shown as a percentage


@dataclasses.dataclass(frozen=True)
class Baseline:
    label: str
    value: float             # in the metric's own unit (a fraction for accuracies)
    metric: str              # which Metric.key it belongs to


@dataclasses.dataclass(frozen=True)
class Demo:
    name: str
    script: str
    config: str
    task: str                                  # the config's "task": the run folder is _{task}_{time}
    metrics: tuple                             # Metric, main one first (others: shown at the last epoch)
    baseline: str                              # how its baseline is computed (see baselines())
    title: str = ""
    args: tuple = ()                           # extra command-line overrides
    warm_from: str = ""                        # demo whose best checkpoint (same seed) is --path_ckpt
    criterion: tuple = ()                      # (metric key, ">=" or "<=", threshold[, label]) per seed
    quick: bool = True                         # part of --quick


QA_M = (Metric("ac_1_ts", "test ac_1", percent=True),)
MC_M = (Metric("ac_ts", "test accuracy", percent=True),)
RET_M = (Metric("median_rank_ts", "test median rank (text→video)", higher=False),
         Metric("r@1_ts", "R@1"), Metric("r@5_ts", "R@5"), Metric("r@10_ts", "R@10"))
CAP_M = (Metric("CIDEr_ts", "test CIDEr"), Metric("Bleu_4_ts", "BLEU-4"), Metric("METEOR_ts", "METEOR"))
PRE_M = (Metric("ac_vtm_vl", "val VTM accuracy (own caption first of 1+3)", percent=True),
         Metric("ac_mtm_vl", "val MTM accuracy", percent=True))
MULTI_M = (Metric("demo-qa_ac_1_ts", "QA test ac_1", percent=True),
           Metric("demo-mc_ac_ts", "true/false MC test accuracy", percent=True),
           Metric("demo-qamc_ac_ts", "option-index MC test accuracy", percent=True),
           Metric("demo-retrieval_median_rank_ts", "retrieval test median rank", higher=False),
           Metric("demo-retrieval_r@1_ts", "retrieval R@1"), Metric("mean_ts", "mean of the main metrics"))

DEMOS = {d.name: d for d in (
    Demo("qa", "main_qaoe_mlm.py", "_args/args_demo-qaoe.json", "demo-qa", QA_M, "qa",
         "open-ended QA", criterion=("ac_1_ts", ">=", 0.5)),
    Demo("fib", "main_qaoe_mlm.py", "_args/args_demo-fib.json", "demo-fib", QA_M, "fib",
         "fill-in-the-blank (LSMDC-FiB style)"),
    Demo("mc", "main_qamc_mlm.py", "_args/args_demo-mc.json", "demo-mc", MC_M, "mc",
         "true/false per option (MSRVTT-MC style)"),
    Demo("qamc", "main_qamc_mlm.py", "_args/args_demo-qamc.json", "demo-qamc", MC_M, "qamc",
         "option index at the [MASK] (TGIF style)", criterion=("ac_ts", ">", "majority")),
    Demo("retrieval", "main_retrieval_tsv.py", "_args/args_demo-retrieval.json", "demo-retrieval", RET_M,
         "retrieval", "text-to-video retrieval", warm_from="qa", criterion=("median_rank_ts", "<=", "half_chance")),
    Demo("pretrain", "main_pretrain_mlm.py", "_args/args_demo-pretrain.json", "demo-pretrain", PRE_M,
         "pretrain", "pretraining (MTM + VTM)"),
    Demo("caption", "main_caption.py", "_args/args_demo-cap.json", "demo-cap", CAP_M, "caption",
         "captioning", warm_from="qa", criterion=("CIDEr_ts", ">=", 1.2)),
    Demo("multi-task", "main_multi_task_mlm.py", "_args/args_demo-multi-task.json", "demo-multi-task",
         MULTI_M, "multi", "multi-task (QA, true/false MC, option-index MC, retrieval; one MLM head)",
         quick=False),
)}

# --quick: every run stops after 2 optimizer steps of one epoch (the evaluation still covers the splits)
QUICK_ARGS = ("--size_epoch", "1", "--max_steps", "2")


# ----------------------------------------------------------------------------- helpers
def sh(cmd, cwd=ROOT) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit_info() -> dict:
    head = sh(["git", "rev-parse", "HEAD"])
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no", "--", "lavender", "_args", "_tools",
                "main_*.py"])
    return {"commit": head, "short": head[:7], "dirty": bool(dirty),
            "subject": sh(["git", "log", "-1", "--format=%s"])}


def machine_info() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu or platform.processor(), "python": platform.python_version()}


def loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def file_digest(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(str(p.relative_to(ROOT) if p.is_absolute() and ROOT in p.parents else p).encode() + b"\0")
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()


def code_digest() -> str:
    return file_digest(sorted(ROOT.glob("lavender/**/*.py")))


def read_readme_baselines(data_dir) -> dict:
    """The demo data's README.txt -> {'qa (global majority answer)': 0.195, ..., 'n_test': 90}."""
    path = Path(data_dir) / "README.txt"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing: run _tools/make_demo_data.py"
                         f"{'' if str(data_dir) == DEFAULT_DATA else ' --out_dir ' + str(data_dir)} first")
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s+(.+?): ([0-9.]+)%$", line)
        if m:
            out[m.group(1)] = float(m.group(2)) / 100
        m = re.search(r"test (\d+) videos", line)
        if m:
            out["n_test"] = int(m.group(1))
    return out


def caption_baseline(demo, data_dir, extra) -> dict:
    """_tools/caption_baseline.py for the demo's config -> its metrics dict (test split)."""
    cmd = [sys.executable, str(ROOT / "_tools" / "caption_baseline.py"), "--config", demo.config,
           "--data_dir", str(data_dir), *extra]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=run_env())
    if res.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["metrics"]


def baselines(demo, data_dir, readme, cap_args) -> list:
    """The video-blind baselines of a demo, as Baseline rows."""
    if demo.baseline == "qa":
        return [Baseline("majority answer", readme["qa (global majority answer)"], "ac_1_ts"),
                Baseline("majority answer per question type", readme["qa (majority answer per question type)"],
                         "ac_1_ts")]
    if demo.baseline == "fib":
        return [Baseline("majority answer", readme["fib (majority answer)"], "ac_1_ts")]
    if demo.baseline in ("mc", "qamc"):
        return [Baseline("majority answer index", readme[f"{demo.baseline} (majority answer index)"], "ac_ts")]
    if demo.baseline == "retrieval":
        n = readme["n_test"]
        return [Baseline("chance", (n + 1) / 2, "median_rank_ts")] + [
            Baseline("chance", 100.0 * min(k, n) / n, f"r@{k}_ts") for k in (1, 5, 10)]
    if demo.baseline == "pretrain":
        return [Baseline("chance (1 of 4)", 0.25, "ac_vtm_vl")]
    if demo.baseline == "caption":
        m = caption_baseline(demo, data_dir, cap_args)
        return [Baseline("most frequent training caption", m[k.rsplit("_", 1)[0]], k)
                for k in ("CIDEr_ts", "Bleu_4_ts", "METEOR_ts") if k.rsplit("_", 1)[0] in m]
    if demo.baseline == "multi":
        n = readme["n_test"]
        return [Baseline("majority answer", readme["qa (global majority answer)"], "demo-qa_ac_1_ts"),
                Baseline("majority answer index", readme["mc (majority answer index)"], "demo-mc_ac_ts"),
                Baseline("majority answer index", readme["qamc (majority answer index)"], "demo-qamc_ac_ts"),
                Baseline("chance", (n + 1) / 2, "demo-retrieval_median_rank_ts"),
                Baseline("chance", 100.0 / n, "demo-retrieval_r@1_ts")]
    raise ValueError(demo.baseline)


def criterion_threshold(demo, bases):
    """(key, op, threshold, text) of a demo's per-seed criterion, or None."""
    if not demo.criterion:
        return None
    key, op, thr = demo.criterion[:3]
    if thr == "majority":
        thr = next(b.value for b in bases if b.metric == key)
        return key, op, thr, "above the majority index on every seed"
    if thr == "half_chance":
        thr = next(b.value for b in bases if b.metric == key) / 2
        return key, op, thr, f"median rank ≤ half of chance ({thr:g}) on every seed"
    return key, op, thr, f"{key.rsplit('_', 1)[0]} {op} {thr:g} on every seed"


def meets(value, op, thr) -> bool:
    return {">=": value >= thr, ">": value > thr, "<=": value <= thr, "<": value < thr}[op]


def run_env():
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ----------------------------------------------------------------------------- running
class Runner:
    def __init__(self, a):
        self.a = a
        self.runs_dir = Path(a.runs_dir)
        self.code = code_digest()
        self.done = {}   # (demo, seed) -> run record

    def run_dir(self, demo, seed) -> Path:
        return self.runs_dir / demo.name / f"seed{seed}"

    def command(self, demo, seed, out_dir, ckpt=None):
        cmd = [sys.executable, demo.script, "--config", demo.config, "--seed", str(seed),
               "--path_output", str(out_dir), "--data_dir", str(self.a.data_dir), *demo.args]
        if self.a.quick:
            cmd += [*QUICK_ARGS, *(("--caption_meteor", "false") if demo.baseline == "caption" else ())]
        cmd += shlex.split(self.a.args)
        if ckpt:
            cmd += ["--path_ckpt", str(ckpt)]
        return cmd

    def fingerprint(self, demo, cmd_tail, parent) -> str:
        data = Path(self.a.data_dir) / "README.txt"
        h = hashlib.sha256()
        for part in (self.code, file_digest([ROOT / demo.config, ROOT / demo.script, data]),
                     json.dumps(cmd_tail), parent or ""):
            h.update(part.encode() + b"\0")
        return h.hexdigest()

    def get(self, demo, seed) -> dict:
        """The run record of (demo, seed): kept if its fingerprint matches, else run now."""
        if (demo.name, seed) in self.done:
            return self.done[(demo.name, seed)]
        parent, ckpt = None, None
        if demo.warm_from:
            src = DEMOS[demo.warm_from]
            prec = self.get(src, seed)
            parent = prec["fingerprint"]
            ckpt = Path(prec["run_folder"]) / f"ckpt_violet_{src.task}_best.pt"
        out = self.run_dir(demo, seed)
        cmd = self.command(demo, seed, out, ckpt)
        tail = [c if i else "python" for i, c in enumerate(cmd)]
        fp = self.fingerprint(demo, [t for t in tail if t != str(out)], parent)
        rec_path = out / "report_run.json"
        pretty = " ".join(shlex.quote(c) for c in tail)
        if rec_path.is_file() and not self.a.fresh:
            rec = json.loads(rec_path.read_text())
            ok = rec.get("returncode") == 0 and Path(rec["log"]).is_file()
            stale = ok and rec.get("fingerprint") != fp and self.a.stale_ok and rec.get("command") == pretty
            if ok and (rec.get("fingerprint") == fp or stale):
                rec["stale"] = bool(stale)
                print(f"[{demo.name} seed {seed}] kept{' (other code: --stale_ok)' if stale else ''}: "
                      f"{rec['run_folder']} ({rec['wall_s']:.0f} s)", flush=True)
                self.done[(demo.name, seed)] = rec
                return rec
        if self.a.report_only:
            raise SystemExit(f"error: --report_only, but no finished run of {demo.name} seed {seed} with the "
                             f"current code/config in {out} (run without --report_only)")
        out.mkdir(parents=True, exist_ok=True)
        for old in glob.glob(str(out / f"_{demo.task}_*")):
            import shutil
            shutil.rmtree(old)
        print(f"[{demo.name} seed {seed}] {pretty}", flush=True)
        load0, t0 = loadavg(), time.time()
        with open(out / "output.txt", "w") as f:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=run_env()).returncode
        wall = time.time() - t0
        folders = sorted(glob.glob(str(out / f"_{demo.task}_*")))
        rec = {"demo": demo.name, "seed": seed, "command": pretty, "fingerprint": fp, "returncode": rc,
               "wall_s": round(wall, 1), "loadavg_before": load0, "loadavg_after": loadavg(),
               "finished": datetime.datetime.now().isoformat(timespec="seconds"),
               "run_folder": folders[-1] if folders else "", "log": os.path.join(folders[-1], "log.json") if folders
               else ""}
        (rec_path).write_text(json.dumps(rec, indent=1))
        if rc or not rec["log"] or not Path(rec["log"]).is_file():
            tail_txt = (out / "output.txt").read_text()[-3000:]
            raise SystemExit(f"error: {demo.name} seed {seed} failed (exit {rc}); see {out / 'output.txt'}:\n"
                             f"{tail_txt}")
        print(f"[{demo.name} seed {seed}] done in {wall:.0f} s (load {load0} -> {rec['loadavg_after']})",
              flush=True)
        self.done[(demo.name, seed)] = rec
        return rec


# ----------------------------------------------------------------------------- statistics
def summarize(demo, records) -> dict:
    """Per metric: per epoch the per-seed values, mean, min, max (epochs present in every seed)."""
    logs = [json.loads(Path(r["log"]).read_text()) for r in records]
    out = {}
    for m in demo.metrics:
        if not all(m.key in lg for lg in logs):
            continue
        per_seed = []
        for lg in logs:
            per_seed.append({int(e): v for e, v in zip(lg["epoch"], lg[m.key]) if v is not None})
        epochs = sorted(set.intersection(*(set(p) for p in per_seed)))
        rows = []
        for e in epochs:
            vals = [p[e] for p in per_seed]
            rows.append({"epoch": e, "values": vals, "mean": statistics.fmean(vals), "min": min(vals),
                         "max": max(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0})
        out[m.key] = rows
    return out


# the demo world's words (_tools/make_demo_data.py): what a caption says about the first (acting) shape
WORLD = {"colour": ("red", "green", "blue", "yellow", "purple", "white"), "shape": ("circle", "square", "triangle"),
         "action": ("left", "right", "up", "down", "turns", "changes")}


def caption_facts(text):
    """(colour, shape, action) named first in a demo caption; 'turns'/'changes' -> 'change'."""
    words = re.findall(r"[a-z]+", text.lower())
    out = [next((w for w in words if w in WORLD[k]), None) for k in WORLD]
    out[2] = "change" if out[2] in ("turns", "changes") else out[2]
    return tuple(out)


def caption_content(records):
    """Per epoch, per seed: the share of test videos whose caption names the first shape's colour, shape and
    action right (against the first reference), and the share that uses the second phrasing ('the ...')."""
    per_seed = []
    for r in records:
        folder = Path(r["run_folder"])
        refs_file = folder / "predictions_test.json"
        if not refs_file.is_file():
            return {}
        refs = {p["video"]: p["references"][0] for p in json.loads(refs_file.read_text())["predictions"]}
        ep = {}
        for f in (folder / "caption_predictions").glob("ep*_pred.*.test.*tsv"):
            e = int(re.match(r"ep(\d+)_", f.name).group(1))
            rows = [line.rstrip("\n").split("\t", 1) for line in f.read_text().splitlines() if line]
            caps = {k: json.loads(v)[0]["caption"] for k, v in rows}
            hits = [[a == b for a, b in zip(caption_facts(c), caption_facts(refs[k]))] for k, c in caps.items()]
            ep[e] = {k: sum(h[i] for h in hits) / len(hits) for i, k in enumerate(WORLD)}
            ep[e]["phrasing 2"] = sum(c.startswith("the ") for c in caps.values()) / len(caps)
        per_seed.append(ep)
    epochs = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    return {e: {k: [p[e][k] for p in per_seed] for k in per_seed[0][e]} for e in epochs}


def fmt(v, metric) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if metric.percent:
        return f"{100 * v:.1f}%"
    if "rank" in metric.key:  # ranks are whole or half numbers; a mean over seeds gets one decimal
        return f"{v:g}" if v * 2 == round(v * 2) else f"{v:.1f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def plot(demo, summ, bases, path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    m = demo.metrics[0]
    keys = [m] + [x for x in demo.metrics[1:] if x.key in summ and demo.baseline == "multi"]
    n = len([k for k in keys if k.key in summ])
    if not n:
        return False
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, met in zip(axes[0], [k for k in keys if k.key in summ]):
        rows = summ[met.key]
        ep = [r["epoch"] for r in rows]
        scale = 100 if met.percent else 1
        for i in range(len(rows[0]["values"])):
            ax.plot(ep, [scale * r["values"][i] for r in rows], color="0.7", lw=1, marker=".")
        ax.plot(ep, [scale * r["mean"] for r in rows], color="C0", lw=2, marker="o", label="mean over seeds")
        ax.fill_between(ep, [scale * r["min"] for r in rows], [scale * r["max"] for r in rows], color="C0",
                        alpha=0.15, label="min–max")
        for j, b in enumerate(x for x in bases if x.metric == met.key):
            ax.axhline(scale * b.value, color=f"C{j + 1}", ls="--", lw=1, label=f"blind: {b.label}")
        ax.set_xlabel("epoch")
        ax.set_title(met.label + (" (%)" if met.percent else ""), fontsize=9)
        ax.set_xticks(ep)
        ax.legend(fontsize=7)
    fig.suptitle(f"demo {demo.name}: {demo.title}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- report
def write_report(a, demos, seeds, results, info) -> str:
    out = Path(a.out)
    lines = ["# Demo results", "",
             f"Written by `python _tools/demo_report.py {info['argv']}` on commit `{info['commit']['short']}`"
             f"{' (with uncommitted changes in lavender/_args/_tools)' if info['commit']['dirty'] else ''}"
             f", {info['date']}; {info['machine']['cpus']} CPU cores "
             f"({info['machine']['cpu']}), Python {info['machine']['python']}. Seeds {', '.join(map(str, seeds))}."
             + (" **Quick mode: 2 training steps per run, not the demo's figures.**" if a.quick else "")
             + (" **Some runs come from other code or configs (--stale_ok): " + ", ".join(info["stale"]) + ".**"
                if info.get("stale") else ""), "",
             "Each demo runs its entry script once per seed; the figures are the test split's (pretraining: val) "
             "after each epoch, as the mean over seeds with the min–max range. Wall time is per run, training and "
             "evaluation included, as measured: the load average (1 min) before and after each run says whether "
             "other work shared the cores. Baselines ignore the video (the demo data's `README.txt`, "
             "`_tools/caption_baseline.py`).", "",
             "| demo | final metric (mean, min–max over seeds) | per seed | video-blind baseline | criterion | "
             "wall time per run | load avg |", "|---|---|---|---|---|---|---|"]
    sections = []
    for demo in demos:
        res = results[demo.name]
        summ, bases, recs = res["summary"], res["baselines"], res["records"]
        main = demo.metrics[0]
        rows = summ.get(main.key)
        walls = [r["wall_s"] for r in recs]
        wall = f"{statistics.fmean(walls) / 60:.1f} min ({min(walls) / 60:.1f}–{max(walls) / 60:.1f})"
        loads = [x for r in recs for x in (r.get("loadavg_before"), r.get("loadavg_after")) if x is not None]
        load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"
        base_txt = "; ".join(f"{fmt(b.value, main)} ({b.label})" for b in bases if b.metric == main.key) or "—"
        crit = res.get("criterion")
        crit_txt = "—"
        if crit and rows:
            ok = all(meets(v, crit[1], crit[2]) for v in rows[-1]["values"])
            crit_txt = f"{'met' if ok else '**not met**'}: {crit[3]}"
        if rows:
            last = rows[-1]
            lines.append(f"| [{demo.name}](#{demo.name}) | {main.label}: {fmt(last['mean'], main)} "
                         f"({fmt(last['min'], main)}–{fmt(last['max'], main)}) at epoch {last['epoch']} | "
                         f"{' / '.join(fmt(v, main) for v in last['values'])} | {base_txt} | {crit_txt} | {wall} | "
                         f"{load} |")
        sec = [f"## {demo.name}", "", f"{demo.title}. `{res['command']}` (seeds {', '.join(map(str, seeds))})"
               + (f", starting from the `{demo.warm_from}` demo's best checkpoint of the same seed "
                  f"(`--path_ckpt`; its run is not counted in the wall time)" if demo.warm_from else "") + ".", ""]
        for met in demo.metrics:
            mrows = summ.get(met.key)
            if not mrows:
                continue
            if met is main or demo.baseline == "multi":
                bl = "; ".join(f"{fmt(b.value, met)} ({b.label})" for b in bases if b.metric == met.key)
                sec += [f"{met.label}" + (f" — video-blind: {bl}" if bl else "") + ":", "",
                        "| epoch | mean | min–max | per seed |", "|---|---|---|---|"]
                sec += [f"| {r['epoch']} | {fmt(r['mean'], met)} | {fmt(r['min'], met)}–{fmt(r['max'], met)} | "
                        f"{' / '.join(fmt(v, met) for v in r['values'])} |" for r in mrows]
                sec.append("")
        others = [met for met in demo.metrics[1:] if met.key in summ and demo.baseline != "multi"]
        if others:
            parts = []
            for met in others:
                r = summ[met.key][-1]
                bl = "; ".join(f"{fmt(b.value, met)} {b.label}" for b in bases if b.metric == met.key)
                parts.append(f"{met.label} {fmt(r['mean'], met)} ({fmt(r['min'], met)}–{fmt(r['max'], met)})"
                             + (f" [video-blind {bl}]" if bl else ""))
            sec += [f"At the last epoch: {'; '.join(parts)}.", ""]
        content = res.get("content")
        if content:
            keys = list(next(iter(content.values())))
            sec += ["What the test captions say about the first shape (share of the 90 videos named right, mean "
                    "over seeds (min–max); chance: colour 1/6, shape 1/3, action 1/5), and the share written in the "
                    "second phrasing (`the ... is moving ..., one shape in total`): which of the two phrasings greedy "
                    "decoding picks moves CIDEr by about 0.3 at the same content.", "",
                    "| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            sec += [f"| {e} | " + " | ".join(f"{100 * statistics.fmean(v[k]):.0f}% ({100 * min(v[k]):.0f}–"
                                              f"{100 * max(v[k]):.0f})" for k in keys) + " |"
                    for e, v in content.items()]
            sec.append("")
        sec += [f"Wall time per run: {' / '.join(f'{w / 60:.1f}' for w in walls)} min (load average "
                f"{load} around the runs).", ""]
        if res.get("plot"):
            sec += [f"![{demo.name}]({os.path.relpath(res['plot'], out.parent)})", ""]
        sections += sec
    lines += ["", *sections]
    text = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


README_START, README_END = "<!-- demo_report: start -->", "<!-- demo_report: end -->"


def readme_table(a, demos, seeds, results, info) -> str:
    """The README's demo table: per demo its command, final metric over seeds and baseline."""
    out = Path(a.out)
    lines = [f"Over seeds {', '.join(map(str, seeds))} on {info['machine']['cpus']} CPU cores "
             f"({info['machine']['cpu']}), commit `{info['commit']['short']}`"
             f"{' (with uncommitted changes)' if info['commit']['dirty'] else ''}, {info['date'][:10]}: written by "
             f"`python _tools/demo_report.py {info['argv']}`; per epoch, per seed and with plots in "
             f"[{out.name}]({out.as_posix()}).", "",
             "| demo | command | final metric: mean (min–max) over seeds | video-blind baseline | wall time per run |",
             "|---|---|---|---|---|"]
    for demo in demos:
        res = results[demo.name]
        main, rows = demo.metrics[0], res["summary"].get(demo.metrics[0].key)
        if not rows:
            continue
        last, walls = rows[-1], [r["wall_s"] for r in res["records"]]
        base = "; ".join(f"{fmt(b.value, main)} ({b.label})" for b in res["baselines"] if b.metric == main.key)
        cmd = res["command"].replace("python ", "", 1).replace(" --seed N", "")
        lines.append(f"| [{demo.name}]({out.as_posix()}#{demo.name}) | `{cmd}` | {main.label}: "
                     f"{fmt(last['mean'], main)} ({fmt(last['min'], main)}–{fmt(last['max'], main)}) after "
                     f"epoch {last['epoch']} | {base or '—'} | {statistics.fmean(walls) / 60:.1f} min |")
    return "\n".join(lines)


def update_readme(path, table):
    """Replace what lies between the README's demo_report markers (atomically)."""
    text = Path(path).read_text()
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise SystemExit(f"error: {path}: needs one '{README_START}' and one '{README_END}' line")
    head, rest = text.split(README_START)
    tail = rest.split(README_END)[1]
    tmp = Path(f"{path}.tmp")
    tmp.write_text(f"{head}{README_START}\n{table}\n{README_END}{tail}")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    ap.add_argument("--only", nargs="+", choices=sorted(DEMOS), metavar="DEMO",
                    help=f"these demos only ({', '.join(DEMOS)})")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {' '.join(QUICK_ARGS)} on every run, one seed, no METEOR, demos without "
                         f"multi-task unless --only names it")
    ap.add_argument("--data_dir", default=DEFAULT_DATA, help="demo data (made if it is the default and missing)")
    ap.add_argument("--runs_dir", default="_snapshot/demo_report")
    ap.add_argument("--out", default="docs/demo_results.md")
    ap.add_argument("--json", default=None, help="numbers as JSON (default: --out with .json)")
    ap.add_argument("--args", default="", help="extra overrides for every run, e.g. \"--n_workers 0\"")
    ap.add_argument("--fresh", action="store_true", help="run again even where a matching run is kept")
    ap.add_argument("--report_only", action="store_true", help="no runs: tables and plots from kept runs")
    ap.add_argument("--stale_ok", action="store_true",
                    help="keep finished runs of the same command even if the code or config changed since "
                         "(the report says so); for looking at old runs, not for the published tables")
    ap.add_argument("--no_plots", action="store_true")
    ap.add_argument("--readme", default="", metavar="README.md",
                    help="also write the demo table between this file's demo_report markers")
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    seeds = a.seeds or ([0] if a.quick else [0, 1, 2])
    demos = [DEMOS[n] for n in a.only] if a.only else [d for d in DEMOS.values() if d.quick or not a.quick]
    if not (Path(a.data_dir) / "README.txt").is_file() and a.data_dir == DEFAULT_DATA and not a.report_only:
        print("making the demo data: _tools/make_demo_data.py", flush=True)
        subprocess.run([sys.executable, str(ROOT / "_tools" / "make_demo_data.py")], check=True, cwd=ROOT,
                       env=run_env())
    readme = read_readme_baselines(a.data_dir)
    runner = Runner(a)
    cap_args = ["--caption_meteor", "false"] if a.quick else []
    results = {}
    for demo in demos:
        bases = baselines(demo, a.data_dir, readme, cap_args + shlex.split(a.args) if demo.baseline == "caption"
                          else [])
        records = [runner.get(demo, s) for s in seeds]
        summ = summarize(demo, records)
        res = {"summary": summ, "baselines": bases, "records": records,
               "criterion": criterion_threshold(demo, bases),
               "command": re.sub(r" --seed \d+", " --seed N", re.sub(r" --path_output \S+", "",
                                                                    records[0]["command"]))}
        res["command"] = re.sub(r" --path_ckpt \S+", " --path_ckpt QA_BEST_CKPT", res["command"])
        res["command"] = res["command"].replace(f" --data_dir {a.data_dir}", "" if a.data_dir == DEFAULT_DATA
                                                else f" --data_dir {a.data_dir}")
        if not a.no_plots:
            p = Path(a.out).parent / f"{Path(a.out).stem}_{demo.name}.png"
            res["plot"] = str(p) if plot(demo, summ, bases, p) else ""
        if demo.baseline == "caption":
            res["content"] = caption_content(records)
        results[demo.name] = res
    info = {"commit": commit_info(), "machine": machine_info(),
            "date": datetime.datetime.now().isoformat(timespec="minutes"),
            "argv": " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv)),
            "stale": [f"{r['demo']} seed {r['seed']}" for res in results.values() for r in res["records"]
                      if r.get("stale")]}
    text = write_report(a, demos, seeds, results, info)
    if a.readme:
        update_readme(a.readme, readme_table(a, demos, seeds, results, info))
    jpath = Path(a.json or Path(a.out).with_suffix(".json"))
    jpath.write_text(json.dumps({"info": info, "seeds": seeds, "quick": a.quick, "demos": {
        n: {"summary": r["summary"], "baselines": [dataclasses.asdict(b) for b in r["baselines"]],
            "criterion": r["criterion"], "command": r["command"], "content": r.get("content"),
            "runs": [{k: rec[k] for k in ("seed", "wall_s", "loadavg_before", "loadavg_after", "finished",
                                          "run_folder")} for rec in r["records"]]}
        for n, r in results.items()}}, indent=1))
    print(text)
    print(f"wrote {a.out} and {jpath}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from lavender.run import main_guard  # one error line and exit code, as every tool
    sys.exit(main_guard(main))
