"""Benchmarks, one subcommand each.

    python _tools/benchmark.py data [--batch_size 8] [--workers 0 1 2] [--json out.json]
    python _tools/benchmark.py retrieval [--n 64] [--config _args/args_demo-retrieval.json]

``data``: DataLoader throughput (clips/s) of `VideoStore` train clips (size_frame 5, size_img 224,
img_rand_crop) for several worker counts, on the demo store (``_datasets/demo/img_demo.tsv``,
if generated) and on a synthetic store of 320x240 JPEG frames written to a temp dir.

``retrieval``: full-evaluation pairs/s (each video encoded once, texts fused in batches, only the
true/false rows of the MLM head) against the bare fusion encoder + MLM head forward on the same pair
batches, their ratio, and the share of time spent in the video encoder.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lavender.cli import main_guard  # noqa: E402


# ----------------------------------------------------------------------------- data
def write_synthetic_store(out_dir, n_videos: int = 64, n_frames: int = 8, size=(240, 320), seed: int = 0):
    """``img_synth.tsv`` (+ id2lineidx) of textured JPEG frames with realistic file sizes."""
    import numpy as np

    from lavender.data.frames import encode_frame
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


def loader_rate(store, workers: int, batch_size: int, n_samples: int) -> float:
    """Samples/s over `n_samples`, excluding the first batch (worker start-up)."""
    import torch

    from lavender.data.collate import seed_worker, stack_clips

    dl = torch.utils.data.DataLoader(_ClipDataset(store, n_samples + batch_size), batch_size=batch_size,
                                     num_workers=workers, worker_init_fn=seed_worker, collate_fn=stack_clips,
                                     multiprocessing_context="fork" if workers else None)
    it = iter(dl)
    next(it)
    t0, n = time.perf_counter(), 0
    for b in it:
        n += b.shape[0]
    return n / (time.perf_counter() - t0)


def bench_data(args, model_step_rate=None) -> dict:
    """Loader throughput table. `model_step_rate` (train steps/s of the model at the same batch size),
    if given, adds the loader/model ratio (>1: the loader keeps up)."""
    import torch

    from lavender.data.video_store import VideoStore

    torch.set_num_threads(1)  # like one training process per core; workers add their own
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        demo = ROOT / "_datasets" / "demo" / "img_demo.tsv"
        if demo.exists():
            stores["demo (96x96, 8 fr)"] = demo
        else:
            print(f"note: {demo} missing (run _tools/make_demo_data.py); benchmarking the synthetic store only")
        t0 = time.time()
        stores["synthetic (320x240, 8 fr)"] = write_synthetic_store(tmp, args.n_videos, 8)
        print(f"wrote synthetic store ({args.n_videos} videos) in {time.time() - t0:.1f}s")
        for name, path in stores.items():
            store = VideoStore.from_tsv(path, size_frame=args.size_frame, size_img=args.size_img,
                                        img_transform=["img_rand_crop"])
            for w in args.workers:
                r = loader_rate(store, w, args.batch_size, args.n_samples)
                results[f"{name} workers={w}"] = r
                line = f"{name:28s} workers={w}: {r:7.1f} clips/s ({r / args.batch_size:5.2f} batches/s)"
                if model_step_rate:
                    line += f", loader/model = {r / args.batch_size / model_step_rate:.2f}"
                print(line, flush=True)
        if args.model_config and demo.exists():
            results.update(_loader_vs_model(args, demo))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


def model_train_rate(config, n_steps=5):
    """Train samples/s of the model at a config (CPU or GPU), on one fixed batch of its own data."""
    import torch

    from lavender.config import load_config
    from lavender.models.pretrained import create_model
    from lavender.tasks.qa_oe import QAOpenEnded
    from lavender.tokenizer import load_tokenizer

    cfg = load_config(["--config", config, "--log_level", "warning"])
    task = QAOpenEnded(cfg, load_tokenizer(cfg.tokenizer))
    model = create_model(cfg).train()
    ds = task.datasets["train"]
    batch = task.collate([ds[i] for i in range(cfg.size_batch)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for i in range(n_steps + 1):
        if i == 1:
            t0 = time.perf_counter()  # first step excluded (allocation)
        loss, _ = task.train_step(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return cfg, n_steps * cfg.size_batch / (time.perf_counter() - t0)


def _loader_vs_model(args, demo):
    """Loader clips/s at the demo config's frame settings against the model's train samples/s."""
    import torch

    from lavender.data.video_store import VideoStore

    torch.set_num_threads(2)
    cfg, model_rate = model_train_rate(args.model_config)
    torch.set_num_threads(1)
    print(f"model train step at {Path(args.model_config).name}: {model_rate:.1f} samples/s "
          f"(batch {cfg.size_batch}, {cfg.size_frame} frames, {cfg.size_img} px)")
    out = {"model_samples_per_s": model_rate}
    store = VideoStore.from_tsv(demo, size_frame=cfg.size_frame, size_img=cfg.size_img,
                                img_transform=cfg.img_transform)
    for w in args.workers:
        r = loader_rate(store, w, cfg.size_batch, args.n_samples)
        out[f"demo config workers={w}"] = r
        print(f"demo store at the demo config, workers={w}: {r:7.1f} clips/s -> loader/model = "
              f"{r / model_rate:.1f}x", flush=True)
    return out


def add_data_args(p):
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size_frame", type=int, default=5)
    p.add_argument("--size_img", type=int, default=224)
    p.add_argument("--n_samples", type=int, default=128, help="clips timed per setting")
    p.add_argument("--n_videos", type=int, default=64, help="videos in the synthetic store")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--model_config", default=str(ROOT / "_args" / "args_demo-qaoe.json"),
                   help="config whose train-step rate the loader is compared with ('' to skip)")


def _build(config, extra=()):
    """Task-free model + config for the model benchmarks (random weights, eval mode)."""
    from lavender.config import load_config
    from lavender.models.lavender import build_model
    from lavender.tokenizer import load_tokenizer

    cfg = load_config(["--config", config, *extra])
    tok = load_tokenizer(cfg.tokenizer)
    return cfg, tok, build_model(dict(cfg)).eval()


def bench_retrieval(args) -> dict:
    """Full retrieval evaluation speed: pairs/s of our scoring vs the bare fusion encoder + MLM head."""
    import torch

    from torch.utils.flop_counter import FlopCounterMode

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
        with FlopCounterMode(display=False) as fc:  # fusion encoder + true/false head, per pair
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
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def add_retrieval_args(p):
    p.add_argument("--n", type=int, default=64, help="texts and videos (n x n pairs)")
    p.add_argument("--config", default=str(ROOT / "_args" / "args_demo-retrieval.json"))
    p.add_argument("--override", default="", help='extra config overrides, one string: "--size_frame 4"')
    p.add_argument("--text_batch", type=int, default=0, help="texts fused per pass (0: all n)")
    p.add_argument("--video_batch", type=int, default=8)
    p.add_argument("--json", default=None)


# subcommand -> (argument adder, runner); other benchmarks register here
COMMANDS = {"data": (add_data_args, bench_data), "retrieval": (add_retrieval_args, bench_retrieval)}


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
