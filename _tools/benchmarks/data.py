"""`data`: DataLoader throughput (clips/s) of frame stores, and the loader next to the train step."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lavender.fileio import atomic_json

from .measure import ROOT, _require_device
from .model import bench_model


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


def write_synthetic_videos(out_dir, n_videos: int = 32, n_frames: int = 50, size=(240, 320), sample: int = 8,
                           seed: int = 0):
    """`n_videos` H.264 mp4 files (2 s at 25 fps of textured, moving frames) in ``out_dir/videos`` and the
    frame TSV the tools build from them (``img_synthvid.tsv``, `sample` frames each): the same videos as a
    folder store and as a TSV store."""
    import av
    import numpy as np

    from lavender.data.tsv import write_tsv
    from lavender.data.video_files import list_videos, read_video_fields

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    vdir = Path(out_dir) / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    for v in range(n_videos):
        base, noise = rng.integers(0, 255, 3), rng.normal(0, 12, (h, w, 3))
        with av.open(str(vdir / f"synth{v:04d}.mp4"), "w") as c:
            st = c.add_stream("h264", rate=25)
            st.height, st.width, st.pix_fmt = h, w, "yuv420p"
            for t in range(n_frames):
                img = (base[None, None] + 0.4 * xx[..., None] + 0.3 * yy[..., None] + 3 * t) % 255 + noise
                frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
                for pkt in st.encode(frame):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
    tsv = Path(out_dir) / "img_synthvid.tsv"
    write_tsv(tsv, ([Path(p).stem] + read_video_fields(p, sample)[0] for p in list_videos(vdir)),
              id2lineidx_path=str(Path(out_dir) / "img_synthvid.id2lineidx.pkl"))
    return vdir, tsv


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
        if args.device == "cpu" and args.files:
            results.update(_files_vs_tsv(args, tmp))
        if args.model_config:
            results.update(_loader_vs_model(args, stores))
    if args.json:
        atomic_json(results, args.json)
    return results


def _files_vs_tsv(args, tmp):
    """Clips/s of the same videos read from their files (video_dir: decoded in the workers) and from the
    TSV the tools build from them: the demo's mp4 files when generated, and synthetic H.264 videos."""
    from lavender.data.video_folder import VideoFolderStore
    from lavender.data.video_store import VideoStore

    pairs = {}
    demo = ROOT / "_datasets" / "demo"
    if (demo / "img_demo.tsv").exists() and (demo / "_demo").is_dir():
        pairs["demo videos (96x96 mp4, 8 fr)"] = (demo / "_demo", demo / "img_demo.tsv", 8)
    t0 = time.time()
    vdir, tsv = write_synthetic_videos(Path(tmp) / "vid", args.n_file_videos, sample=8)
    print(f"wrote {args.n_file_videos} synthetic H.264 videos (320x240, 50 frames) and their TSV in "
          f"{time.time() - t0:.1f}s")
    pairs["synthetic H.264 (320x240, 50 fr -> 8)"] = (vdir, tsv, 8)
    out = {}
    for name, (folder, path, sample) in pairs.items():
        kw = dict(size_frame=args.size_frame, size_img=args.size_img, img_transform=["img_rand_crop"])
        cached = VideoFolderStore(folder, sample=sample, cache_dir=Path(tmp) / f"cache{len(out)}", **kw)
        for vid in cached.ids():  # video_cache: the first epoch fills it
            cached.frame_strings(vid)
        stores = {"files": VideoFolderStore(folder, sample=sample, **kw), "files, cached": cached,
                  "tsv": VideoStore.from_tsv(path, **kw)}
        for w in args.workers:
            rates = {k: loader_rate(st, w, args.batch_size, args.n_samples) for k, st in stores.items()}
            out.update({f"{name} {k} workers={w}": r for k, r in rates.items()})
            print(f"{name:40s} workers={w}: files {rates['files']:7.1f}, files cached {rates['files, cached']:7.1f}, "
                  f"tsv {rates['tsv']:7.1f} clips/s (files/tsv {rates['files'] / rates['tsv']:.2f})", flush=True)
    return out


def _loader_vs_model(args, stores):
    """Loader clips/s at the model config's frame settings next to the train step's samples/s there."""
    import torch

    from lavender.data.video_store import VideoStore

    torch.set_num_threads(args.model_threads)
    ns = argparse.Namespace(config=args.model_config, override="", device=args.device, precision=args.precision,
                            batch=0, steps=2, warmup=2, variants=["configured"], compile=False, json=None)
    res = bench_model(ns, "train", quiet=True)
    model_rate, batch = res["variants"]["configured"]["samples_per_s"], res["batch"]
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
    p.add_argument("--files", type=int, default=1, help="also time video files against their TSV (0: skip)")
    p.add_argument("--n_file_videos", type=int, default=24, help="synthetic H.264 videos for that comparison")
    p.add_argument("--device", default="cpu", help="where JPEGs are decoded (cuda: nvJPEG) and the model runs")
    p.add_argument("--model_config", default=str(ROOT / "_args" / "args_demo-qaoe.json"),
                   help="config whose train-step rate the loader is compared with ('' to skip)")
    p.add_argument("--precision", default="auto", help="precision of that train step")
    p.add_argument("--model_threads", type=int, default=0, help="CPU threads of the train step (0: torch default)")
