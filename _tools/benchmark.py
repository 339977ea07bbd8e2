"""Benchmarks, one subcommand each.

    python _tools/benchmark.py data [--batch_size 8] [--workers 0 1 2] [--json out.json]

``data``: DataLoader throughput (clips/s) of `VideoStore` train clips (size_frame 5, size_img 224,
img_rand_crop) for several worker counts, on the demo store (``_datasets/demo/img_demo.tsv``,
if generated) and on a synthetic store of 320x240 JPEG frames written to a temp dir.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


def add_data_args(p):
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size_frame", type=int, default=5)
    p.add_argument("--size_img", type=int, default=224)
    p.add_argument("--n_samples", type=int, default=128, help="clips timed per setting")
    p.add_argument("--n_videos", type=int, default=64, help="videos in the synthetic store")
    p.add_argument("--json", default=None, help="also write the results here")


# subcommand -> (argument adder, runner); other benchmarks register here
COMMANDS = {"data": (add_data_args, bench_data)}


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
    sys.exit(main())
