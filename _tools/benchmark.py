"""Benchmarks, one subcommand each.

    python _tools/benchmark.py train [--config _args/args_msrvtt-qa.json] [--device cpu|cuda]
                                     [--precision fp32|bf16|fp16] [--compile] [--batch N] [--json out.json]
    python _tools/benchmark.py eval  (same options)
    python _tools/benchmark.py data [--batch_size 8] [--workers 0 1 2] [--device cpu|cuda] [--json out.json]
    python _tools/benchmark.py decoders [--videos DIR ...] [--sample 8]
    python _tools/benchmark.py retrieval [--n 64] [--config _args/args_demo-retrieval.json]
    python _tools/benchmark.py original --original LAVENDER_CHECKOUT --original_deps DIR [--steps 8] [--rounds 2]

``train`` / ``eval``: one training step (forward + backward + clipping where the config clips + fused AdamW)
/ one evaluation forward (``torch.inference_mode``) of the task's own step on a synthetic batch of the
config's shapes (random weights, random frames, random words in the task's text layout). Variants of the same model run
interleaved in one process: ``configured`` (what a run of the config does: its ``use_checkpoint``, SDPA
fusion attention, eager), ``no_checkpoint`` / ``checkpoint_all`` (the other side of the config's
``use_checkpoint``; ``checkpoint_N``, the first N Swin stages, through ``--variants``), ``keep_none`` /
``keep_linear`` / ``keep_matmul`` (the other values of ``checkpoint_keep``: what checkpointed blocks keep
instead of recomputing), ``eager_attn``
(eager fusion attention), with ``--compile`` ``compile`` (``torch.compile`` of the encoders), and on
the CPU ``torch_dropout`` (PyTorch's dropout instead of lavender/models/dropout.py's) and
``malloc_default`` (freed memory given back to the system as glibc does by default,
lavender/engine/host_memory.py). Per variant:
samples/s, step time, peak memory, FLOP/s achieved (model FLOPs counted by ``FlopCounterMode``),
efficiency = that / the rate of a large matmul at the same precision measured between the rounds of
the same run, on a GPU MFU against the device's published dense bf16 peak, and the ratio of samples/s
to ``configured``. Then the step's own matrix products (shapes and strides recorded during the step) are
replayed alone: their rate / the matmul rate is the ceiling the efficiency could reach if nothing
but the matrix products took time.

``data``: DataLoader throughput (clips/s) of `VideoStore` train clips (size_frame 5, size_img 224,
img_rand_crop) for several worker counts, on the demo store (``_datasets/demo/img_demo.tsv``,
if generated) and on a synthetic store of 320x240 JPEG frames written to a temp dir; ``--device cuda``
decodes the JPEGs on the GPU (workers only read and base64-decode). On the CPU, the same videos read
from their files (``video_dir``: decoded in the workers) next to the TSV the tools build from them: the
demo's mp4 files and synthetic 320x240 H.264 videos. Then the loader at the frame settings of
``--model_config`` next to the train step's samples/s at that config on the same device.

``decoders``: videos/s per core of PyAV, OpenCV and, when installed, torchcodec and decord, reading what
the video-file store needs of a file (its frame count and the extracted frames), and their pixel
difference from PyAV's (the tools' decoder).

``original``: this code's training step next to the original LAVENDER's model code (a checkout of
microsoft/LAVENDER, run as written), on the same batch, fresh processes interleaved round by round: each
process's steps, its steady-state step time (the median of steps ``--window``..``--steps``) and the ratio of
the original's to ours (docs/performance.md, "Side by side with the original").

``retrieval``: full-evaluation pairs/s (each video encoded once, texts fused in batches, only the
true/false rows of the MLM head) against the bare fusion encoder + MLM head forward on the same pair
batches, their ratio, and the share of time spent in the video encoder.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # lavender
sys.path.insert(0, str(Path(__file__).resolve().parent))          # benchmarks/

from benchmarks.data import add_data_args, bench_data  # noqa: E402
from benchmarks.decoders import add_decoder_args, bench_decoders  # noqa: E402
from benchmarks.model import add_model_args, bench_eval, bench_train  # noqa: E402
from benchmarks.original import add_original_args, bench_original  # noqa: E402
from benchmarks.retrieval import add_retrieval_args, bench_retrieval  # noqa: E402
from lavender.run import main_guard  # noqa: E402


# subcommand -> (argument adder, runner); other benchmarks register here
COMMANDS = {"train": (add_model_args, bench_train), "eval": (add_model_args, bench_eval),
            "data": (add_data_args, bench_data), "decoders": (add_decoder_args, bench_decoders),
            "retrieval": (add_retrieval_args, bench_retrieval), "original": (add_original_args, bench_original)}


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
