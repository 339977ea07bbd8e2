"""`original`: this code's training step next to the original LAVENDER's (microsoft/LAVENDER), on the same
batch, in fresh processes interleaved side by side; each process's steady-state step time and the ratio of
the two sides, measured in one run.

The original runs as written, from a checkout given with `--original`, beside this code's torch. It needs
packages in the versions it was written for, which a folder made with `pip install --target` gives
(`--original_deps`); the packages it imports only for its data, logging and distributed code are replaced
by empty modules (`STUBBED`). Both sides build random weights at the config's shapes and train as they
train: ours `task.train_step`, backward, clipping and AdamW (the `train` benchmark's step, with the
config's `use_checkpoint` and `checkpoint_keep`); the original its agent's `step` (autocast and a loss
scaler, both off on a CPU, clipping, its own AdamW and schedule) with its `use_checkpoint`, which wraps
the whole video encoder in fairscale's checkpoint wrapper.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lavender.fileio import atomic_json

from .measure import ROOT, _cpu_name
from .model import _apply_variant, _model_setup, config_task, synthetic_batch
from .original_side import ORIGINAL_CLASSES, run_side

# side -> the benchmark variant of ours it runs (None: the original's code)
SIDES = {"ours": "configured", "ours_keep_none": "keep_none", "original": None}
# Launcher variables under which the original's get_args would start a distributed process group.
DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_LOCAL_RANK")


def add_original_args(p):
    p.add_argument("--original", default=None,
                   help="a checkout of microsoft/LAVENDER (the folder with main_qaoe_mlm.py)")
    p.add_argument("--original_deps", default="",
                   help="a folder of packages for the original, first on its path (pip install --target DIR "
                        "transformers==4.30.2 fairscale==0.4.13 ..., docs/performance.md)")
    p.add_argument("--config", default=str(ROOT / "_args" / "args_msrvtt-qa.json"))
    p.add_argument("--batch", type=int, default=2, help="samples per step")
    p.add_argument("--steps", type=int, default=8, help="steps per process")
    p.add_argument("--window", type=int, default=4,
                   help="first step of the steady state: a process's step time is the median of its steps "
                        "window..steps (the earlier ones are the warm-up, printed apart)")
    p.add_argument("--rounds", type=int, default=2, help="processes per side, interleaved round by round")
    p.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES),
                   help="which processes each round starts, in this order")
    p.add_argument("--override", default="", help='config overrides for both sides, one string: "--size_frame 4"')
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # a job file: run one side's process


def bench_original(args) -> dict:
    """Side by side with the original: step times per process, the steady-state ratio."""
    import torch

    if args.child:  # this code's side; the original's runs original_side.py as a script
        return run_side(args.child, _our_step)
    job, (cfg, task, tok) = _check(args)
    with tempfile.TemporaryDirectory(prefix="lavender-sbs-") as tmp:
        job["batch_file"] = str(Path(tmp) / "batch.pt")
        torch.save(synthetic_batch(task, tok, cfg, args.batch), job["batch_file"])  # what both sides train on
        runs = []
        for r in range(args.rounds):
            for side in args.sides:
                print(f"round {r + 1}/{args.rounds}: {side} ({args.steps} steps) ...", flush=True)
                run = _run_child(dict(job, side=side), Path(tmp) / f"{side}-{r}")
                print("  steps (s): " + " ".join(f"{t:.2f}" for t in run["steps_s"]), flush=True)
                runs.append({"round": r + 1, **run})
    res = _summarise(args, runs)
    _print(res)
    if args.json:
        atomic_json(res, args.json)
    return res


def _check(args) -> tuple:
    """Everything refused before any process starts; the job every child gets, and the config, task and
    tokenizer of ours."""
    from lavender.paths import resolve_vocab

    if "original" in args.sides and not args.original:
        raise SystemExit("--original DIR is needed: a checkout of microsoft/LAVENDER (docs/performance.md)")
    if args.original_deps and not Path(args.original_deps).is_dir():
        raise SystemExit(f"--original_deps {args.original_deps}: no such folder")
    if args.batch < 1 or args.rounds < 1:
        raise SystemExit(f"--batch {args.batch} --rounds {args.rounds}: both must be at least 1")
    if not 1 <= args.window <= args.steps:
        raise SystemExit(f"--window {args.window}: must lie in 1..--steps ({args.steps})")
    cfg, task, tok = config_task(_our_args(args.config, args.override))
    if cfg.type not in ORIGINAL_CLASSES:
        raise SystemExit(f"{args.config}: type {cfg.type!r} has no side-by-side here; use a config of type "
                         f"{', '.join(ORIGINAL_CLASSES)}")
    orig = Path(args.original or ".").resolve()
    script = ORIGINAL_CLASSES[cfg.type][0]
    if "original" in args.sides and not (orig / f"{script}.py").is_file():
        raise SystemExit(f"--original {args.original}: no {script}.py there; give a checkout of microsoft/LAVENDER")
    return {"config": str(Path(args.config).resolve()), "override": args.override, "steps": args.steps,
            "type": cfg.type, "original": str(orig), "vocab": str(resolve_vocab(cfg.tokenizer)),
            "original_deps": str(Path(args.original_deps).resolve()) if args.original_deps else ""}, (cfg, task, tok)


def _our_args(config, override):
    """The `train` benchmark's arguments for this code's side (fp32 on the CPU, as the original runs there;
    the batch is the one both sides get)."""
    return argparse.Namespace(config=config, device="cpu", precision="fp32", override=override, batch=0)


def _run_child(job, stem):
    """One fresh process of one side; its output goes to a log whose end is shown if it fails."""
    job_file, out, log = stem.with_suffix(".job.json"), stem.with_suffix(".json"), stem.with_suffix(".log")
    atomic_json(dict(job, out=str(out)), job_file)
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    cmd = ([str(Path(__file__).with_name("original_side.py"))] if SIDES[job["side"]] is None
           else [str(ROOT / "_tools" / "benchmark.py"), "original", "--child"])
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, *cmd, str(job_file)], stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc != 0 or not out.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise SystemExit(f"the {job['side']} process failed (exit {rc}); the end of its output:\n{tail}")
    return json.loads(out.read_text())


def _our_step(job, batch):
    s = _model_setup(_our_args(job["config"], job["override"]), "train", batch=batch)
    stages, keep = _apply_variant(s.model, SIDES[job["side"]], {}, s.cfg)
    job["about"] = f"this code, use_checkpoint {stages}, checkpoint_keep {keep}, max_grad_norm {s.cfg.max_grad_norm}"
    return s.step


def _summarise(args, runs) -> dict:
    w = args.window
    sides = {}
    for run in runs:
        run["steady_s"] = statistics.median(run["steps_s"][w - 1:])
        sides.setdefault(run["side"], []).append(run["steady_s"])
    res = {"config": args.config, "batch": args.batch, "steps": args.steps, "window": [w, args.steps],
           "override": args.override, "machine": _cpu_name(), "runs": runs,
           "steady_s": {s: statistics.median(v) for s, v in sides.items()}}
    if "original" in sides:
        res["speedup"] = {s: res["steady_s"]["original"] / t for s, t in res["steady_s"].items() if s != "original"}
    return res


def _print(res):
    threads = res["runs"][0]["threads"]
    print(f"train step side by side at {Path(res['config']).name}, batch {res['batch']}, fp32, on the CPU "
          f"({res['machine']}, {threads} threads); steady state: the median of steps {res['window'][0]}-"
          f"{res['window'][1]} of each process")
    print(f"  {'side':15s} {'round':>5s} {'steady s':>9s} {'peak GB':>8s}  steps (s)")
    for run in res["runs"]:
        print(f"  {run['side']:15s} {run['round']:5d} {run['steady_s']:9.2f} {run['max_rss_gb']:8.2f}  "
              + " ".join(f"{t:.2f}" for t in run["steps_s"]))
    for side in res["steady_s"]:
        print(f"  {side:15s} {next(r['about'] for r in res['runs'] if r['side'] == side)}")
    for side, t in res["steady_s"].items():
        print(f"  {side:15s} steady state {t:.2f} s (median over its processes)")
    for side, x in res.get("speedup", {}).items():
        print(f"  {side} is {x:.2f}x the original's speed (original's steady step / {side}'s)")
