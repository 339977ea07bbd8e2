"""`train` / `eval`: one training step / one evaluation forward of a task's own step on a synthetic batch
of a config's shapes, for interleaved variants of the same model in one process."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import NamedTuple

from lavender.fileio import atomic_json

from .measure import (ROOT, MatmulRate, MatmulRecorder, PeakMemory, _require_device, _timed, flop_counter,
                      peak_bf16_tflops)
from .profile import print_profile, profile_step


BENCHMARKED = ("qaoe", "qamc", "retrieval")  # task families with a synthetic batch layout


class Variant(NamedTuple):
    checkpoint: object = None    # Swin stages with activation checkpointing (None: as the config says)
    keep: str = None             # what checkpointed blocks keep (checkpoint_keep; None: as the config says)
    attn: str = "sdpa"           # fusion-encoder attention
    compiled: str = ""           # torch.compile: "encoders" (compile_encoders) or "blocks" (each block on its own)
    fast_dropout: bool = True    # lavender.models.dropout's CPU path (False: PyTorch's dropout and SDPA)
    retain_memory: bool = True   # CPU: freed memory stays in the heap (lavender.engine.host_memory)

    def applies(self, mode, dev, compile_requested, cfg):
        """Whether this variant is run by default for the run config `cfg`."""
        if self.compiled:
            return compile_requested
        if self.keep is not None:  # another trade-off of a checkpointed configured step
            return mode == "train" and bool(cfg.use_checkpoint) and self.keep != cfg.checkpoint_keep
        if self.checkpoint is not None:  # the other side of the config's own choice
            return mode == "train" and bool(self.checkpoint) != bool(cfg.use_checkpoint)
        if not self.fast_dropout:  # a CPU path, and dropout acts in training only
            return dev.type == "cpu" and mode == "train"
        if not self.retain_memory:
            return dev.type == "cpu"
        return True


# `configured`: what a run of the config does (its use_checkpoint, SDPA fusion attention, the fast CPU dropout,
# freed memory retained); every other variant changes one thing. `checkpoint_N` (N stages): --variants.
# `keep_X`: checkpoint_keep X (the config's checkpointed stages; every stage if it checkpoints none).
VARIANTS = {"configured": Variant(), "no_checkpoint": Variant(checkpoint=0), "checkpoint_all": Variant(checkpoint=True),
            **{f"keep_{k}": Variant(keep=k) for k in ("none", "linear", "matmul")},
            "eager_attn": Variant(attn="eager"), "compile": Variant(compiled="encoders"),
            "compile_blocks": Variant(compiled="blocks"),
            "torch_dropout": Variant(fast_dropout=False), "malloc_default": Variant(retain_memory=False),
            **{f"checkpoint_{n}": Variant(checkpoint=n) for n in (1, 2, 3)}}


def synthetic_batch(task, tok, cfg, n, seed=0):
    """`n` training examples in the task's own layout (its `encode` + `collate`) from random words and
    random frames: e.g. QA-OE "[CLS] question answer : [MASK] [SEP]" with the answer labelled at the [MASK]."""
    import random

    import torch

    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    words = [w for w in tok.convert_ids_to_tokens(list(range(len(tok)))) if w.isalpha()]

    def text():
        return " ".join(rng.choice(words) for _ in range(cfg.size_txt))

    examples = []
    for i in range(n):
        item = {"video": f"synth{i}", "question": text(), "caption": text(), "answer_text": rng.choice(words),
                "answer": 0, **{f"option_{k}": text() for k in range(cfg.size_option)}}
        ex = task.encode(item, True, rng)
        ex.update(index=i, video=item["video"],
                  img=torch.randn(cfg.size_frame, 3, cfg.size_img, cfg.size_img, generator=gen))
        examples.append(ex)
    return task.collate(examples)


def config_task(args):
    """Run config of a benchmark (random weights, `args.precision` and `args.override`), tokenizer and task."""
    from lavender.config import load_config
    from lavender.tasks import build_task
    from lavender.tokenizer import load_tokenizer

    cfg = load_config(["--config", args.config, "--fusion_encoder_rand_init", "true", "--vis_backbone_init",
                       "random", "--log_level", "warning", "--precision", args.precision,
                       *shlex.split(args.override)])
    if cfg.type not in BENCHMARKED:
        raise SystemExit(f"{args.config}: type {cfg.type!r} is not benchmarked; use a config of type "
                         f"{', '.join(BENCHMARKED)}")
    tok = load_tokenizer(cfg.tokenizer)
    return cfg, build_task(cfg.type, cfg, tok, build_data=False), tok


def _model_setup(args, mode, n=0, batch=None):
    """Config, task, random-weight model, synthetic batch of `n` (0: --batch, else the config's
    size_batch; or `batch`, one made before) and the step function of one benchmark: a train step is
    forward, backward, gradient clipping where the config clips (`max_grad_norm`) and AdamW, as in training."""
    import torch

    from lavender.engine.optim import build_optimizer
    from lavender.engine.precision import AMP_DTYPES, autocast, resolve_precision
    from lavender.engine.evaluation import to_device
    from lavender.models.factory import build_model

    dev = _require_device(args.device)
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    cfg, task, tok = config_task(args)
    if mode == "eval" and cfg.type == "retrieval":
        raise SystemExit(f"{args.config}: retrieval evaluates all pairs at once: use the `retrieval` subcommand")
    margs = dict(cfg, heads=task.heads())
    torch.manual_seed(0)
    model = build_model(margs).to(dev).train(mode == "train")
    if batch is None:
        batch = synthetic_batch(task, tok, cfg, n or args.batch or cfg.size_batch)
    n, batch = len(batch["img"]), to_device(batch, dev)
    precision = resolve_precision(cfg, dev)
    if mode == "train":
        opt = build_optimizer(model, cfg)
        scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")

        def step():
            with autocast(precision, dev):
                loss, _ = task.train_step(model, batch)
            scaler.scale(loss).backward()
            if cfg.max_grad_norm > 0:  # as lavender.engine.trainer does
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
    else:
        def step():
            with torch.inference_mode(), autocast(precision, dev):
                task.eval_step(model, batch)
    return argparse.Namespace(cfg=cfg, dev=dev, model=model, step=step, batch=n, precision=precision,
                              dtype=AMP_DTYPES.get(precision, torch.float32))


def _apply_variant(model, name, compile_kw, cfg):
    """Set the model up as variant `name` of the run config `cfg` (its use_checkpoint, checkpoint_keep);
    returns the checkpointed stages and checkpoint_keep it set."""
    from lavender.engine.host_memory import set_retain_freed_memory
    from lavender.models.dropout import set_fast_dropout
    from lavender.models.lavender import compile_encoders

    v = VARIANTS[name]
    stages = cfg.use_checkpoint if v.checkpoint is None else v.checkpoint
    keep = cfg.checkpoint_keep if v.keep is None else v.keep
    if v.keep is not None and not stages:
        stages = True  # keep_X of a config that checkpoints nothing: every stage
    model.enc_img.swin.set_use_checkpoint(stages)
    model.enc_img.swin.set_checkpoint_keep(keep)  # moot for stages not checkpointed
    model.set_attn_implementation(v.attn)
    compile_encoders(model, v.compiled == "encoders", **compile_kw)
    _compile_blocks(model, v.compiled == "blocks", compile_kw)
    set_fast_dropout(v.fast_dropout)
    if next(model.parameters()).device.type == "cpu":
        set_retain_freed_memory(v.retain_memory)
    return stages, keep


def _compile_blocks(model, enable, compile_kw):
    """Regional compilation: every Swin block and fusion-encoder layer compiled on its own, the matrix
    products left to aten and the memory-bound operators between them fused (`enable=False`: eager)."""
    import torch._dynamo

    from lavender.models.video_swin import SwinTransformerBlock3D

    # Blocks differ in what the compiled code is specialised on (window shift, stage shapes): more graphs
    # than dynamo's default limit of 8, past which the remaining blocks would silently run eagerly.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    blocks = [m for m in model.enc_img.modules() if isinstance(m, SwinTransformerBlock3D)] + list(model.trsfr.layer)
    for m in blocks:
        if enable:
            m.compile(**compile_kw)
        else:
            m._compiled_call_impl = None  # nn.Module.compile's attribute; None is the eager call


def _fill_memory_batch(args, mode, frac=0.8):
    """The batch whose `configured` step would use about `frac` of the GPU's memory, extrapolated from the
    memory of a step at the starting batch (activations grow linearly with the batch)."""
    import gc

    import torch

    if _require_device(args.device).type != "cuda":
        raise SystemExit("--fill_memory needs --device cuda")
    s = _model_setup(args, mode)
    _apply_variant(s.model, "configured", {}, s.cfg)
    s.step()
    with PeakMemory(s.dev) as pm:
        s.step()
    total = torch.cuda.get_device_properties(s.dev).total_memory / 1e9
    fixed = pm.peak_gb - pm.step_gb  # weights, optimizer state, batch
    n = max(s.batch, int((frac * total - fixed) / (pm.step_gb / s.batch)))
    print(f"--fill_memory: a step at batch {s.batch} peaks at {pm.peak_gb:.1f} of {total:.1f} GB -> batch {n}")
    del s
    gc.collect()
    torch.cuda.empty_cache()
    return n


def _warm_up(step, dev, max_steps, tol=0.05):
    """Untimed steps until the step time settles (two in a row within `tol` of each other, at least 2 steps,
    at most `max_steps`); returns their times: the first steps every run pays."""
    times = []
    while len(times) < max_steps:
        times.append(_timed(step, dev))
        if len(times) >= 2 and abs(times[-1] - times[-2]) <= tol * times[-2]:
            break
    return times


def bench_model(args, mode, quiet=False) -> dict:
    """Variants of one train step (or eval forward), interleaved round by round with a matmul-rate
    measurement, so that load changes on a shared machine hit all of them alike."""
    import statistics

    import torch

    s = _model_setup(args, mode, _fill_memory_batch(args, mode) if getattr(args, "fill_memory", False) else 0)
    dev, model = s.dev, s.model
    names = list(args.variants or [n for n, v in VARIANTS.items()
                                    if not n.startswith("checkpoint_") or n == "checkpoint_all"
                                    if v.applies(mode, dev, args.compile, s.cfg)])
    compile_kw = {"backend": args.compile_backend} if getattr(args, "compile_backend", None) else {}

    def use(name):
        _apply_variant(model, name, compile_kw, s.cfg)
    ref = names[0]
    use(ref)  # the first steps of a process: allocation, kernel choice, optimizer state, compilation
    first = {ref: _warm_up(s.step, dev, args.warmup)}
    for name in names[1:]:
        use(name)
        first[name] = [_timed(s.step, dev)]
    use(ref)
    model.enc_img.swin.set_use_checkpoint(0)  # model FLOPs and products: without checkpointing's recomputation
    with flop_counter() as fc, MatmulRecorder() as products:
        s.step()
    use(ref)
    flops = fc.get_total_flops() / s.batch
    times, mem, rates, matmul_rate = {n: [] for n in names}, {}, [], MatmulRate(dev, s.dtype)
    for _ in range(args.steps):
        rates.append(matmul_rate())
        for i, name in enumerate(names):
            use(name)
            if VARIANTS[name].retain_memory != VARIANTS[names[i - 1]].retain_memory:
                s.step()  # the heap settles to this variant's allocation policy first
            times[name].append(_timed(s.step, dev))
    rates.append(matmul_rate())
    alone = products.replay(dev)
    rates.append(matmul_rate())
    use(ref)
    prof = profile_step(s.step) if getattr(args, "profile", False) else None
    for name in names:  # memory in steps of their own: measuring it returns freed memory to the system,
        use(name)  # which a timed step would then fault in again
        with PeakMemory(dev) as pm:
            s.step()
        mem[name] = pm
    use(ref)
    device_name, peak_tf = peak_bf16_tflops(dev)
    rate = statistics.median(rates)
    res = {"mode": mode, "config": args.config, "device": str(dev), "device_name": device_name,
           "threads": torch.get_num_threads() if dev.type == "cpu" else None, "precision": s.precision,
           "batch": s.batch, "max_grad_norm": s.cfg.max_grad_norm, "use_checkpoint": s.cfg.use_checkpoint,
           "checkpoint_keep": s.cfg.checkpoint_keep, "gflop_per_sample": flops / 1e9, "matmul_tflops": rate / 1e12,
           "matmul_tflops_runs": [r / 1e12 for r in rates], "peak_bf16_tflops": peak_tf,
           "reference": ref, "first_steps_s": first[ref], "variants": {}}
    for name in names:
        st = statistics.median(times[name])
        achieved = flops * s.batch / st
        res["variants"][name] = {
            "samples_per_s": s.batch / st, "step_s": st, "step_s_runs": times[name], "first_step_s": first[name][0],
            "tflops": achieved / 1e12, "efficiency": achieved / rate,
            "mfu": achieved / (peak_tf * 1e12) if peak_tf else None,
            "peak_mem_gb": mem[name].peak_gb, "step_mem_gb": mem[name].step_gb}
    alone.update(efficiency=alone["tflops"] * 1e12 / rate if alone["tflops"] else None,
                 share_of_step=alone["s"] / res["variants"][ref]["step_s"])
    res["matmuls_alone"] = alone
    res["profile"] = prof
    for v in res["variants"].values():
        v["ratio"] = v["samples_per_s"] / res["variants"][ref]["samples_per_s"]
    if not quiet:
        _print_model(res, Path(args.config).name)
    if args.json:
        atomic_json(res, args.json)
    res["cfg"] = s.cfg
    return res


def _print_model(res, config_name):
    clip = f" + clipping at {res['max_grad_norm']:g}" if res["max_grad_norm"] > 0 else ""
    what = f"train step (forward + backward{clip} + AdamW)" if res["mode"] == "train" else "eval forward"
    dev = res["device_name"] + (f", {res['threads']} threads" if res["threads"] else "")
    print(f"{what} at {config_name} (use_checkpoint {res['use_checkpoint']}, checkpoint_keep "
          f"{res['checkpoint_keep']}), batch {res['batch']}, "
          f"{res['precision']}, on {res['device']} ({dev})")
    print(f"  {res['gflop_per_sample']:.1f} GFLOP per sample (model FLOPs); matmul rate at {res['precision']}: "
          f"{res['matmul_tflops']:.3f} TFLOP/s (median of " + ", ".join(f"{r:.3f}" for r in res["matmul_tflops_runs"])
          + ")" + (f"; published dense bf16 peak {res['peak_bf16_tflops']} TFLOP/s" if res["peak_bf16_tflops"] else ""))
    print(f"  first steps of {res['reference']} (untimed; until two agree within 5%): "
          + ", ".join(f"{t:.2f}" for t in res["first_steps_s"]) + " s")
    print(f"  {'variant':14s} {'samples/s':>10s} {'step s':>8s} {'ratio':>6s} {'TFLOP/s':>8s} {'eff.':>6s} "
          f"{'MFU':>6s} {'peak GB':>8s} {'step GB':>8s} {'1st step s':>10s}")
    for name, v in res["variants"].items():
        mfu = f"{100 * v['mfu']:5.1f}%" if v["mfu"] is not None else "   n/a"
        step_gb = f"{v['step_mem_gb']:8.2f}" if v["step_mem_gb"] is not None else "     n/a"
        print(f"  {name:14s} {v['samples_per_s']:10.3f} {v['step_s']:8.3f} {v['ratio']:6.2f} {v['tflops']:8.3f} "
              f"{100 * v['efficiency']:5.1f}% {mfu} {v['peak_mem_gb']:8.2f} {step_gb} {v['first_step_s']:10.2f}")
    print(f"  ratio: samples/s / {res['reference']}'s; eff.: achieved FLOP/s / the matmul rate of this run; "
          f"configured: what a run of the config does, each other variant changes one thing")
    m = res["matmuls_alone"]
    if m["tflops"]:
        print(f"  the step's matrix products alone ({m['calls']} calls, {m['gflop']:.1f} of "
              f"{res['gflop_per_sample'] * res['batch']:.1f} GFLOP, {res['reference']}): {m['tflops']:.3f} TFLOP/s "
              f"= {100 * m['efficiency']:.1f}% of the matmul rate (the ceiling of eff.); {m['s']:.3f} s, "
              f"{100 * m['share_of_step']:.0f}% of the step")
    if res["profile"]:
        print_profile(res["profile"], f"profile of one {res['reference']} step")


def bench_train(args) -> dict:
    """Training step per variant: samples/s, FLOP/s, efficiency (and MFU), memory, ratios."""
    return bench_model(args, "train")


def bench_eval(args) -> dict:
    """Evaluation forward per variant: samples/s, FLOP/s, efficiency (and MFU), memory, ratios."""
    return bench_model(args, "eval")


def add_model_args(p):
    p.add_argument("--config", default=str(ROOT / "_args" / "args_msrvtt-qa.json"))
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true", help="add the variants with torch.compile: `compile` (the "
                   "encoders whole) and `compile_blocks` (each Swin block and fusion layer on its own)")
    p.add_argument("--compile_backend", default=None, help="torch.compile backend (default: inductor)")
    p.add_argument("--batch", type=int, default=0, help="samples per step (0: the config's size_batch)")
    p.add_argument("--fill_memory", action="store_true",
                   help="GPU: the batch at which a step uses ~80%% of the GPU memory, extrapolated from --batch")
    p.add_argument("--steps", type=int, default=3, help="timed rounds (one step of every variant each)")
    p.add_argument("--warmup", type=int, default=6,
                   help="at most this many untimed first steps of the reference variant, until the step time "
                        "settles (reported as the first steps); one untimed step of each other variant")
    p.add_argument("--profile", action="store_true", help="time per operator family of one reference step")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="variants to run, the first is the reference of the ratios (default: all that apply)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--override", default="", help='extra config overrides, one string: "--size_frame 4"')
    p.add_argument("--json", default=None)


def _build(config, extra=()):
    """Task-free model + config for the model benchmarks (random weights, eval mode)."""
    from lavender.config import load_config
    from lavender.models.factory import build_model
    from lavender.tokenizer import load_tokenizer

    cfg = load_config(["--config", config, *extra])
    tok = load_tokenizer(cfg.tokenizer)
    return cfg, tok, build_model(dict(cfg)).eval()
