"""`retrieval`: full-evaluation pairs/s against the bare fusion encoder + MLM head forward."""
from __future__ import annotations

import shlex
import time

from lavender.fileio import atomic_json

from .measure import ROOT, flop_counter
from .model import _build


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
