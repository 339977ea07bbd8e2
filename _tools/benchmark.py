"""Benchmarks, one subcommand each.

    python _tools/benchmark.py train [--config _args/args_msrvtt-qa.json] [--device cpu|cuda]
                                     [--precision fp32|bf16|fp16] [--compile] [--batch N] [--json out.json]
    python _tools/benchmark.py eval  (same options)
    python _tools/benchmark.py data [--batch_size 8] [--workers 0 1 2] [--device cpu|cuda] [--json out.json]
    python _tools/benchmark.py retrieval [--n 64] [--config _args/args_demo-retrieval.json]

``train`` / ``eval``: one training step (forward + backward + fused AdamW) / one evaluation forward
(``torch.inference_mode``) of the task's own step on a synthetic batch of the config's shapes (random
weights, random frames, random words in the task's text layout). Variants of the same model run
interleaved in one process: ``base`` (what training runs: no activation checkpointing, SDPA fusion
attention, eager), ``checkpoint`` (``use_checkpoint``), ``eager_attn`` (eager fusion attention), with
``--compile`` ``compile`` (``torch.compile`` of the encoders), and on the CPU ``torch_dropout``
(PyTorch's dropout instead of lavender/models/dropout.py's) and ``malloc_default`` (freed memory
given back to the system as glibc does by default, lavender/engine/host_memory.py). Per variant:
samples/s, step time, peak memory, FLOP/s achieved (model FLOPs counted by ``FlopCounterMode``),
efficiency = that / the rate of a large matmul at the same precision measured between the rounds of
the same run, on a GPU MFU against the device's published dense bf16 peak, and the ratio of samples/s
to ``base``. Then the step's own matrix products (shapes and strides recorded during the step) are
replayed alone: their rate / the matmul rate is the ceiling the efficiency could reach if nothing
but the matrix products took time.

``data``: DataLoader throughput (clips/s) of `VideoStore` train clips (size_frame 5, size_img 224,
img_rand_crop) for several worker counts, on the demo store (``_datasets/demo/img_demo.tsv``,
if generated) and on a synthetic store of 320x240 JPEG frames written to a temp dir; ``--device cuda``
decodes the JPEGs on the GPU (workers only read and base64-decode). Then the loader at the frame
settings of ``--model_config`` next to the train step's samples/s at that config on the same device.

``retrieval``: full-evaluation pairs/s (each video encoded once, texts fused in batches, only the
true/false rows of the MLM head) against the bare fusion encoder + MLM head forward on the same pair
batches, their ratio, and the share of time spent in the video encoder.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lavender.run import main_guard  # noqa: E402
from lavender.engine.host_memory import release_freed_memory  # noqa: E402
from lavender.fileio import atomic_json  # noqa: E402


# ----------------------------------------------------------------------------- data
def write_synthetic_store(out_dir, n_videos: int = 64, n_frames: int = 8, size=(240, 320), seed: int = 0):
    """``img_synth.tsv`` (+ id2lineidx) of textured JPEG frames with realistic file sizes."""
    import numpy as np

    from lavender.data.codec import encode_frame
    from lavender.data.tsv import write_tsv

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]

    def rows():
        for v in range(n_videos):
            base = rng.integers(0, 255, 3)
            frames = []
            for t in range(n_frames):
                img = (base[None, None] + 0.4 * xx[..., None] + 0.3 * yy[..., None] + 10 * t) % 255
                img = img + rng.normal(0, 12, (h, w, 3))
                frames.append(encode_frame(np.clip(img, 0, 255).astype(np.uint8)))
            yield [f"synth{v:04d}"] + frames

    tsv = Path(out_dir) / "img_synth.tsv"
    write_tsv(tsv, rows(), id2lineidx_path=str(Path(out_dir) / "img_synth.id2lineidx.pkl"))
    return tsv


class _ClipDataset:
    """Minimal map-style dataset: item i -> train clip of the i-th video (repeated to `n` items)."""

    def __init__(self, store, n: int):
        self.store, self.ids, self.n = store, store.ids(), n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.store.clip(self.ids[i % len(self.ids)], train=True)


class _EncodedClipDataset(_ClipDataset):
    """Item i -> the sampled frames of the i-th video still JPEG-encoded (decoded later on a GPU)."""

    def __getitem__(self, i):
        return self.store.encoded_frames(self.ids[i % len(self.ids)], train=True)


def _decode_batches(batches, store, device):
    """Batches of encoded clips -> (B, T, 3, S, S) tensors on `device`: one nvJPEG call per batch."""
    import torch

    from lavender.data.codec import decode_jpegs

    for clips in batches:
        frames = decode_jpegs([f for clip in clips for f in clip], device)
        T = len(clips[0])
        yield torch.stack([store.sampler.tf_train(frames[i:i + T]) for i in range(0, len(frames), T)])


def loader_rate(store, workers: int, batch_size: int, n_samples: int, device="cpu") -> float:
    """Samples/s over `n_samples`, excluding the first batch (worker start-up). `device` "cuda":
    workers return encoded frames and the main process decodes and transforms them on the GPU."""
    import torch

    from lavender.data.collate import seed_worker, stack_clips

    gpu = torch.device(device).type == "cuda"
    ds = (_EncodedClipDataset if gpu else _ClipDataset)(store, n_samples + batch_size)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, worker_init_fn=seed_worker,
                                     collate_fn=list if gpu else stack_clips, pin_memory=gpu,
                                     multiprocessing_context="fork" if workers else None)
    it = _decode_batches(dl, store, device) if gpu else iter(dl)
    next(it)
    t0, n = time.perf_counter(), 0
    for b in it:
        n += b.shape[0]
    if gpu:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def _require_device(device):
    """torch.device(device); a clear exit when it is a GPU that is not there."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is "
                         f"False; torch {torch.__version__}); run without --device cuda on this machine")
    return dev


def bench_data(args) -> dict:
    """Loader throughput table, then the loader against the train step at `--model_config`."""
    import torch

    from lavender.data.video_store import VideoStore

    _require_device(args.device)
    args.model_threads = args.model_threads or torch.get_num_threads()
    torch.set_num_threads(1)  # like one training process per core; workers add their own
    results = {"device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        demo = ROOT / "_datasets" / "demo" / "img_demo.tsv"
        if demo.exists():
            stores["demo (96x96, 8 fr)"] = demo
        else:
            print(f"note: {demo} missing (run _tools/make_demo_data.py); benchmarking the synthetic store only")
        t0 = time.time()
        stores["synthetic (320x240, 8 fr)"] = write_synthetic_store(tmp, args.n_videos, 8)
        print(f"wrote synthetic store ({args.n_videos} videos) in {time.time() - t0:.1f}s; decoding on {args.device}")
        for name, path in stores.items():
            store = VideoStore.from_tsv(path, size_frame=args.size_frame, size_img=args.size_img,
                                        img_transform=["img_rand_crop"])
            for w in args.workers:
                r = loader_rate(store, w, args.batch_size, args.n_samples, args.device)
                results[f"{name} workers={w}"] = r
                print(f"{name:28s} workers={w}: {r:7.1f} clips/s ({r / args.batch_size:5.2f} batches/s)", flush=True)
        if args.model_config:
            results.update(_loader_vs_model(args, stores))
    if args.json:
        atomic_json(results, args.json)
    return results


def _loader_vs_model(args, stores):
    """Loader clips/s at the model config's frame settings next to the train step's samples/s there."""
    import torch

    from lavender.data.video_store import VideoStore

    torch.set_num_threads(args.model_threads)
    ns = argparse.Namespace(config=args.model_config, override="", device=args.device, precision=args.precision,
                            batch=0, steps=2, warmup=1, variants=["base"], compile=False, json=None)
    res = bench_model(ns, "train", quiet=True)
    model_rate, batch = res["variants"]["base"]["samples_per_s"], res["batch"]
    torch.set_num_threads(1)
    cfg = res["cfg"]
    print(f"train step at {Path(args.model_config).name} on {args.device} ({res['precision']}): {model_rate:.1f} "
          f"samples/s (batch {batch}, {cfg.size_frame} frames, {cfg.size_img} px)")
    out = {"model_config": args.model_config, "model_samples_per_s": model_rate, "model_batch": batch}
    for name, path in stores.items():
        store = VideoStore.from_tsv(path, size_frame=cfg.size_frame, size_img=cfg.size_img,
                                    img_transform=cfg.img_transform)
        for w in args.workers:
            r = loader_rate(store, w, batch, args.n_samples, args.device)
            out[f"{name} at model config workers={w}"] = r
            print(f"{name:28s} at that config, workers={w}: {r:7.1f} clips/s -> loader/train step = "
                  f"{r / model_rate:.2f}x", flush=True)
    return out


def add_data_args(p):
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size_frame", type=int, default=5)
    p.add_argument("--size_img", type=int, default=224)
    p.add_argument("--n_samples", type=int, default=128, help="clips timed per setting")
    p.add_argument("--n_videos", type=int, default=64, help="videos in the synthetic store")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--device", default="cpu", help="where JPEGs are decoded (cuda: nvJPEG) and the model runs")
    p.add_argument("--model_config", default=str(ROOT / "_args" / "args_demo-qaoe.json"),
                   help="config whose train-step rate the loader is compared with ('' to skip)")
    p.add_argument("--precision", default="auto", help="precision of that train step")
    p.add_argument("--model_threads", type=int, default=0, help="CPU threads of the train step (0: torch default)")


# ----------------------------------------------------------------------------- train / eval
# Published dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by device-name fragment; first match wins.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756), ("H100", 989), ("H200", 989), ("A100", 312), ("L40S", 362), ("L4", 121),
                    ("B200", 2250))
BENCHMARKED = ("qaoe", "qamc", "retrieval")  # task families with a synthetic batch layout


class Variant(NamedTuple):
    checkpoint: bool = False     # use_checkpoint (activation checkpointing of the Swin blocks)
    attn: str = "sdpa"           # fusion-encoder attention
    compiled: bool = False       # torch.compile'd encoders
    fast_dropout: bool = True    # lavender.models.dropout's CPU path (False: PyTorch's dropout and SDPA)
    retain_memory: bool = True   # CPU: freed memory stays in the heap (lavender.engine.host_memory)

    def applies(self, mode, dev, compile_requested):
        """Whether this variant is run by default."""
        if self.compiled:
            return compile_requested
        if self.checkpoint:
            return mode == "train"
        if not self.fast_dropout:  # a CPU path, and dropout acts in training only
            return dev.type == "cpu" and mode == "train"
        if not self.retain_memory:
            return dev.type == "cpu"
        return True


VARIANTS = {"base": Variant(), "checkpoint": Variant(checkpoint=True), "eager_attn": Variant(attn="eager"),
            "compile": Variant(compiled=True), "torch_dropout": Variant(fast_dropout=False),
            "malloc_default": Variant(retain_memory=False)}


def peak_bf16_tflops(dev):
    """(device name, published dense bf16 peak in TFLOP/s or None if not in the table)."""
    import torch

    if dev.type != "cuda":
        return _cpu_name(), None
    name = torch.cuda.get_device_name(dev)
    return name, next((tf for frag, tf in PEAK_BF16_TFLOPS if frag in name), None)


def _cpu_name():
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class MatmulRate:
    """FLOP/s of a large square matmul at `dtype` on `dev` (the rate efficiency is measured against).
    Its operands and output are allocated once, so that measuring between the rounds does not
    rearrange the heap that the timed steps reuse."""

    def __init__(self, dev, dtype):
        import torch

        self.dev, self.n = dev, 8192 if dev.type == "cuda" else 2048
        self.a, self.b = (torch.randn(self.n, self.n, device=dev).to(dtype) for _ in range(2))
        self.out = torch.empty_like(self.a)

    def __call__(self, min_s=0.3) -> float:
        import torch

        torch.matmul(self.a, self.b, out=self.out)
        _sync(self.dev)
        k, t0 = 0, time.perf_counter()
        while True:
            torch.matmul(self.a, self.b, out=self.out)
            k += 1
            if k >= 2:
                _sync(self.dev)
                dt = time.perf_counter() - t0
                if dt >= min_s:
                    return 2 * self.n ** 3 * k / dt


class PeakMemory:
    """Peak memory of the enclosed code: `peak_gb` (GPU: allocated by PyTorch; CPU: the process's
    resident set) and `step_gb` = peak - what was in use at entry (None where the CPU peak cannot be
    reset: then `peak_gb` is the process's peak so far)."""

    def __init__(self, dev):
        self.dev, self.peak_gb, self.step_gb = dev, None, None

    @staticmethod
    def _status_kb(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    def __enter__(self):
        import torch

        _sync(self.dev)
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
            self._base = torch.cuda.memory_allocated(self.dev)
        else:
            release_freed_memory()  # so that the resident set is what is in use
            try:  # "5" resets the peak resident set size (VmHWM), Linux >= 4.0
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self._base = self._status_kb("VmRSS") * 1024
            except (OSError, StopIteration):
                self._base = None
        return self

    def __exit__(self, *exc):
        import resource

        import torch

        _sync(self.dev)
        if self.dev.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.dev)
        elif self._base is not None:
            peak = self._status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_gb = peak / 1e9
        self.step_gb = None if self._base is None else (peak - self._base) / 1e9


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


def flop_counter():
    """FlopCounterMode (totals only) that also counts PyTorch's CPU flash attention, which its table lacks
    (SDPA without autograd on CPU runs it): the same formulas as the GPU attention kernels."""
    import torch
    from torch.utils import flop_counter as fc

    aten, extra = torch.ops.aten, {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        extra = {aten._scaled_dot_product_flash_attention_for_cpu:
                 lambda q, k, v, *a, **kw: fc.sdpa_flop_count(q, k, v),
                 aten._scaled_dot_product_flash_attention_for_cpu_backward:
                 lambda g, q, k, v, *a, **kw: fc.sdpa_backward_flop_count(g, q, k, v)}
    return fc.FlopCounterMode(display=False, custom_mapping=extra)


class _Layout(NamedTuple):
    shape: tuple
    stride: tuple
    dtype: object

    def tensor(self, dev):
        """A random tensor of this shape and stride (strides may overlap: broadcast biases)."""
        import torch

        size = 1 + sum((n - 1) * st for n, st in zip(self.shape, self.stride))
        return torch.randn(size, device=dev).to(self.dtype).as_strided(self.shape, self.stride)


class MatmulRecorder:
    """Records the matrix products (mm, addmm, bmm, baddbmm) a step dispatches, forward and backward,
    with their argument layouts and counts; `replay` times them alone on fresh tensors of those shapes
    and strides. Their rate / the square-matmul rate is the ceiling of the step's efficiency: what it
    would reach if everything but the matrix products took no time."""

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        aten, calls = torch.ops.aten, {}
        products = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}
        composite = {aten.linear.default, aten.matmul.default}  # reach here undecomposed in inference mode

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func in composite:
                    with self:  # the mode is off inside its own dispatch: on again for the parts
                        out = func.decompose(*args, **(kwargs or {}))
                    if out is not NotImplemented:
                        return out
                if func in products:
                    key = (func, tuple(_Layout(tuple(a.shape), a.stride(), a.dtype) if isinstance(a, torch.Tensor)
                                       else a for a in args), tuple(sorted((kwargs or {}).items())))
                    calls[key] = calls.get(key, 0) + 1
                return func(*args, **(kwargs or {}))

        self.calls, self._mode = calls, _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)

    def replay(self, dev) -> dict:
        """{"calls", "gflop", "s", "tflops"} of the recorded products, each run as often as recorded."""
        flops = secs = 0.0
        for (func, layouts, kwargs), count in self.calls.items():
            args = [a.tensor(dev) if isinstance(a, _Layout) else a for a in layouts]
            a, b = [x.shape for x in layouts if isinstance(x, _Layout)][-2:]  # the two factors
            flops += count * 2 * (a[0] if len(a) == 3 else 1) * a[-2] * a[-1] * b[-1]
            func(*args, **dict(kwargs))  # warm-up: allocation, kernel choice
            secs += _timed(lambda: [func(*args, **dict(kwargs)) for _ in range(count)], dev)
        return {"calls": sum(self.calls.values()), "gflop": flops / 1e9, "s": secs,
                "tflops": flops / secs / 1e12 if secs else None}


def _model_setup(args, mode, n=0):
    """Config, task, random-weight model, synthetic batch of `n` (0: --batch, else the config's
    size_batch) and the step function of one benchmark."""
    import torch

    from lavender.config import load_config
    from lavender.engine.optim import build_optimizer
    from lavender.engine.precision import AMP_DTYPES, autocast, resolve_precision
    from lavender.engine.evaluation import to_device
    from lavender.models.factory import build_model
    from lavender.tasks import build_task
    from lavender.tokenizer import load_tokenizer

    dev = _require_device(args.device)
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    cfg = load_config(["--config", args.config, "--fusion_encoder_rand_init", "true", "--vis_backbone_init",
                       "random", "--log_level", "warning", "--precision", args.precision,
                       *shlex.split(args.override)])
    if cfg.type not in BENCHMARKED:
        raise SystemExit(f"{args.config}: type {cfg.type!r} is not benchmarked; use a config of type "
                         f"{', '.join(BENCHMARKED)}")
    tok = load_tokenizer(cfg.tokenizer)
    task = build_task(cfg.type, cfg, tok, build_data=False)
    if mode == "eval" and cfg.type == "retrieval":
        raise SystemExit(f"{args.config}: retrieval evaluates all pairs at once: use the `retrieval` subcommand")
    margs = dict(cfg, heads=task.heads())
    torch.manual_seed(0)
    model = build_model(margs).to(dev).train(mode == "train")
    n = n or args.batch or cfg.size_batch
    batch = to_device(synthetic_batch(task, tok, cfg, n), dev)
    precision = resolve_precision(cfg, dev)
    if mode == "train":
        opt = build_optimizer(model, cfg)
        scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")

        def step():
            with autocast(precision, dev):
                loss, _ = task.train_step(model, batch)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
    else:
        def step():
            with torch.inference_mode(), autocast(precision, dev):
                task.eval_step(model, batch)
    return argparse.Namespace(cfg=cfg, dev=dev, model=model, step=step, batch=n, precision=precision,
                              dtype=AMP_DTYPES.get(precision, torch.float32))


def _apply_variant(model, name, compile_kw):
    from lavender.engine.host_memory import set_retain_freed_memory
    from lavender.models.dropout import set_fast_dropout
    from lavender.models.lavender import compile_encoders

    v = VARIANTS[name]
    model.enc_img.swin.set_use_checkpoint(v.checkpoint)
    model.set_attn_implementation(v.attn)
    compile_encoders(model, v.compiled, **compile_kw)
    set_fast_dropout(v.fast_dropout)
    if next(model.parameters()).device.type == "cpu":
        set_retain_freed_memory(v.retain_memory)


def _timed(fn, dev):
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def _fill_memory_batch(args, mode, frac=0.8):
    """The batch whose `base` step would use about `frac` of the GPU's memory, extrapolated from the
    memory of a step at the starting batch (activations grow linearly with the batch)."""
    import gc

    import torch

    if _require_device(args.device).type != "cuda":
        raise SystemExit("--fill_memory needs --device cuda")
    s = _model_setup(args, mode)
    _apply_variant(s.model, "base", {})
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


def bench_model(args, mode, quiet=False) -> dict:
    """Variants of one train step (or eval forward), interleaved round by round with a matmul-rate
    measurement, so that load changes on a shared machine hit all of them alike."""
    import statistics

    import torch

    s = _model_setup(args, mode, _fill_memory_batch(args, mode) if getattr(args, "fill_memory", False) else 0)
    dev, model = s.dev, s.model
    names = list(args.variants or [n for n, v in VARIANTS.items() if v.applies(mode, dev, args.compile)])
    compile_kw = {"backend": args.compile_backend} if getattr(args, "compile_backend", None) else {}
    first = {}
    for name in names:  # warm-up: allocation, kernel choice, compilation
        _apply_variant(model, name, compile_kw)
        first[name] = _timed(s.step, dev)
        for _ in range(args.warmup - 1):
            s.step()
    _apply_variant(model, "base", compile_kw)
    with flop_counter() as fc, MatmulRecorder() as products:  # model FLOPs: without checkpointing's recomputation
        s.step()
    flops = fc.get_total_flops() / s.batch
    times, mem, rates, matmul_rate = {n: [] for n in names}, {}, [], MatmulRate(dev, s.dtype)
    for _ in range(args.steps):
        rates.append(matmul_rate())
        for i, name in enumerate(names):
            _apply_variant(model, name, compile_kw)
            if VARIANTS[name].retain_memory != VARIANTS[names[i - 1]].retain_memory:
                s.step()  # the heap settles to this variant's allocation policy first
            times[name].append(_timed(s.step, dev))
    rates.append(matmul_rate())
    alone = products.replay(dev)
    rates.append(matmul_rate())
    for name in names:  # memory in steps of their own: measuring it returns freed memory to the system,
        _apply_variant(model, name, compile_kw)  # which a timed step would then fault in again
        with PeakMemory(dev) as pm:
            s.step()
        mem[name] = pm
    _apply_variant(model, "base", compile_kw)
    device_name, peak_tf = peak_bf16_tflops(dev)
    rate = statistics.median(rates)
    res = {"mode": mode, "config": args.config, "device": str(dev), "device_name": device_name,
           "threads": torch.get_num_threads() if dev.type == "cpu" else None, "precision": s.precision,
           "batch": s.batch, "gflop_per_sample": flops / 1e9, "matmul_tflops": rate / 1e12,
           "matmul_tflops_runs": [r / 1e12 for r in rates], "peak_bf16_tflops": peak_tf,
           "reference": names[0], "variants": {}}
    for name in names:
        st = statistics.median(times[name])
        achieved = flops * s.batch / st
        res["variants"][name] = {
            "samples_per_s": s.batch / st, "step_s": st, "step_s_runs": times[name], "first_step_s": first[name],
            "tflops": achieved / 1e12, "efficiency": achieved / rate,
            "mfu": achieved / (peak_tf * 1e12) if peak_tf else None,
            "peak_mem_gb": mem[name].peak_gb, "step_mem_gb": mem[name].step_gb}
    alone.update(efficiency=alone["tflops"] * 1e12 / rate if alone["tflops"] else None,
                 share_of_step=alone["s"] / res["variants"]["base"]["step_s"] if "base" in names else None)
    res["matmuls_alone"] = alone
    ref = res["variants"][names[0]]["samples_per_s"]
    for v in res["variants"].values():
        v["ratio"] = v["samples_per_s"] / ref
    if not quiet:
        _print_model(res, Path(args.config).name)
    if args.json:
        atomic_json(res, args.json)
    res["cfg"] = s.cfg
    return res


def _print_model(res, config_name):
    what = "train step (forward + backward + AdamW)" if res["mode"] == "train" else "eval forward"
    dev = res["device_name"] + (f", {res['threads']} threads" if res["threads"] else "")
    print(f"{what} at {config_name}, batch {res['batch']}, {res['precision']}, on {res['device']} ({dev})")
    print(f"  {res['gflop_per_sample']:.1f} GFLOP per sample (model FLOPs); matmul rate at {res['precision']}: "
          f"{res['matmul_tflops']:.3f} TFLOP/s (median of " + ", ".join(f"{r:.3f}" for r in res["matmul_tflops_runs"])
          + ")" + (f"; published dense bf16 peak {res['peak_bf16_tflops']} TFLOP/s" if res["peak_bf16_tflops"] else ""))
    print(f"  {'variant':12s} {'samples/s':>10s} {'step s':>8s} {'ratio':>6s} {'TFLOP/s':>8s} {'eff.':>6s} "
          f"{'MFU':>6s} {'peak GB':>8s} {'step GB':>8s} {'1st step s':>10s}")
    for name, v in res["variants"].items():
        mfu = f"{100 * v['mfu']:5.1f}%" if v["mfu"] is not None else "   n/a"
        step_gb = f"{v['step_mem_gb']:8.2f}" if v["step_mem_gb"] is not None else "     n/a"
        print(f"  {name:12s} {v['samples_per_s']:10.3f} {v['step_s']:8.3f} {v['ratio']:6.2f} {v['tflops']:8.3f} "
              f"{100 * v['efficiency']:5.1f}% {mfu} {v['peak_mem_gb']:8.2f} {step_gb} {v['first_step_s']:10.2f}")
    print(f"  ratio: samples/s / {res['reference']}'s; eff.: achieved FLOP/s / the matmul rate of this run")
    m = res["matmuls_alone"]
    if m["tflops"]:
        share = f", {100 * m['share_of_step']:.0f}% of base's step time" if m["share_of_step"] else ""
        print(f"  the step's matrix products alone ({m['calls']} calls, {m['gflop']:.1f} of "
              f"{res['gflop_per_sample'] * res['batch']:.1f} GFLOP, base variant): {m['tflops']:.3f} TFLOP/s = "
              f"{100 * m['efficiency']:.1f}% of the matmul rate (the ceiling of eff.); {m['s']:.3f} s{share}")


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
    p.add_argument("--compile", action="store_true", help="add the variant with torch.compile'd encoders")
    p.add_argument("--compile_backend", default=None, help="torch.compile backend (default: inductor)")
    p.add_argument("--batch", type=int, default=0, help="samples per step (0: the config's size_batch)")
    p.add_argument("--fill_memory", action="store_true",
                   help="GPU: the batch at which a step uses ~80%% of the GPU memory, extrapolated from --batch")
    p.add_argument("--steps", type=int, default=3, help="timed rounds (one step of every variant each)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
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


def bench_retrieval(args) -> dict:
    """Full retrieval evaluation speed: pairs/s of our scoring vs the bare fusion encoder + MLM head."""
    import torch

    from lavender.engine.precision import autocast, resolve_precision
    from lavender.tasks.retrieval import Retrieval, score_columns

    torch.manual_seed(0)
    cfg, tok, model = _build(args.config, shlex.split(args.override))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(dev)
    precision = resolve_precision(cfg, dev)
    task = Retrieval(cfg, tok, build_data=False)
    n, T, S = args.n, cfg.size_frame, cfg.size_img
    imgs = torch.randn(n, T, 3, S, S)
    words = torch.randint(2000, 20000, (n, cfg.size_txt - 2))
    enc = [task.encode_text(tok.decode(w)) for w in words]
    txt = torch.stack([e[0] for e in enc]).to(dev)
    mask = torch.stack([e[1] for e in enc]).to(dev)
    chunk = args.text_batch or n
    vb = args.video_batch

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        batches = ((list(range(i, min(i + vb, n))), imgs[i:i + vb]) for i in range(0, n, vb))
        return score_columns(task, model, batches, txt, mask, chunk)

    @torch.no_grad()
    def video_only():
        for i in range(0, n, vb):
            model.encode_video(imgs[i:i + vb].to(dev))

    @torch.no_grad()
    def bare():  # the same pair batches through fusion encoder + MLM head only (video features given)
        feats, fmasks = model.encode_video(imgs[:1].to(dev))
        emb = model.embed_text(txt)
        for _ in range(n):
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                h = model.fuse(feats.expand(e - s, -1, -1), fmasks.expand(e - s, -1), emb[s:e], mask[s:e])
                model.mlm(h[:, -1])

    with torch.no_grad(), autocast(precision, dev):  # warm-up (first calls allocate and pick kernels)
        f, m = model.encode_video(imgs[:vb].to(dev))
        k = min(chunk, n)
        with flop_counter() as fc:  # fusion encoder + true/false head, per pair
            h = model.fuse(f[:1].expand(k, -1, -1), m[:1].expand(k, -1), model.embed_text(txt[:k]), mask[:k])
            model.mlm(h[:, -1])
        flops_pair = fc.get_total_flops() / k
    times = {}
    for name, fn in (("ours", ours), ("bare", bare), ("video", video_only)):
        sync()
        t0 = time.perf_counter()
        with autocast(precision, dev):
            fn()
        sync()
        times[name] = time.perf_counter() - t0
    pairs = n * n
    res = {"pairs": pairs, "ours_pairs_per_s": pairs / times["ours"], "bare_pairs_per_s": pairs / times["bare"],
           "ratio": times["bare"] / times["ours"], "video_share": times["video"] / times["ours"],
           "gflop_per_pair": flops_pair / 1e9, "device": str(dev), "precision": precision, "config": args.config}
    print(f"{n} texts x {n} videos = {pairs} pairs on {dev}, {precision} ({args.config}, text batch {chunk})")
    print(f"  ours (video encode once + fusion, true/false rows only): {res['ours_pairs_per_s']:9.1f} pairs/s")
    print(f"  bare fusion encoder + MLM head on the same pair batches:  {res['bare_pairs_per_s']:9.1f} pairs/s")
    print(f"  ratio ours/bare: {res['ratio']:.2f}   share of time in the video encoder: {100 * res['video_share']:.1f}%")
    print(f"  fusion encoder + full MLM head: {res['gflop_per_pair']:.2f} GFLOP per pair "
          f"({res['gflop_per_pair'] * res['bare_pairs_per_s'] / 1e3:.2f} TFLOP/s achieved by the bare forward)")
    est = 1_000_000 / res["ours_pairs_per_s"]
    print(f"  estimate for 1000 x 1000 pairs (MSRVTT 1k-A) at this config on {dev}: {est / 60:.1f} min")
    if args.json:
        atomic_json(res, args.json)
    return res


def add_retrieval_args(p):
    p.add_argument("--n", type=int, default=64, help="texts and videos (n x n pairs)")
    p.add_argument("--config", default=str(ROOT / "_args" / "args_demo-retrieval.json"))
    p.add_argument("--override", default="", help='extra config overrides, one string: "--size_frame 4"')
    p.add_argument("--text_batch", type=int, default=0, help="texts fused per pass (0: all n)")
    p.add_argument("--video_batch", type=int, default=8)
    p.add_argument("--json", default=None)


# subcommand -> (argument adder, runner); other benchmarks register here
COMMANDS = {"train": (add_model_args, bench_train), "eval": (add_model_args, bench_eval),
            "data": (add_data_args, bench_data), "retrieval": (add_retrieval_args, bench_retrieval)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (add, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").splitlines()[0])
        add(p)
        p.set_defaults(fn=fn)
    a = ap.parse_args(argv)
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
