"""`_tools/benchmark.py retrieval` runs and reports consistent figures (tiny model, CPU)."""
import importlib.util
import json
import os
import shlex

from lavender.paths import REPO_ROOT
from tiny import make_color_world, tiny_overrides


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", os.path.join(REPO_ROOT, "_tools", "benchmark.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_retrieval_benchmark_reports(tmp_path):
    world = make_color_world(str(tmp_path / "data"), n_videos=4, dataset="msrvtt", tasks={})
    over = shlex.join(tiny_overrides(world, tmp_path / "out"))
    out = tmp_path / "bench.json"
    _benchmark().main(["retrieval", "--n", "6", "--text_batch", "4", "--video_batch", "4",
                       "--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-retrieval.json"),
                       "--override", over, "--json", str(out)])
    res = json.load(open(out))
    assert res["pairs"] == 36 and res["precision"] == "fp32"
    assert res["ours_pairs_per_s"] > 0 and res["bare_pairs_per_s"] > 0
    assert 0 < res["video_share"] < 1
    assert abs(res["ratio"] - res["ours_pairs_per_s"] / res["bare_pairs_per_s"]) < 1e-6
    # a 1-layer, 32-wide fusion encoder over ~45 tokens + an ~80-word head: about a MFLOP per pair
    assert 1e-6 < res["gflop_per_pair"] < 1e-2
