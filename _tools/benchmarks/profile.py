"""`--profile`: where one step's time goes, per operator family (matrix products, softmax, normalisation,
element-wise, copies and layout changes, the optimizer, ...), from torch.profiler's self times."""
from __future__ import annotations

import re

# operator family -> patterns of aten operator names (first match wins; in this order)
FAMILIES = (
    ("matrix products", r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_scaled_dot_product\w*|mkldnn_\w*matmul\w*)$"),
    ("attention (fused SDPA)", r"^aten::_scaled_dot_product\w*|^aten::_flash_attention\w*"),
    ("softmax (fwd + bwd)", r"^aten::(_?softmax|_softmax_backward_data|_?log_softmax|_log_softmax_backward_data)$"),
    ("LayerNorm (fwd + bwd)", r"^aten::native_layer_norm(_backward)?$"),
    ("GELU (fwd + bwd)", r"^aten::gelu(_backward)?$"),
    ("convolution", r"^aten::(\w*convolution\w*|_conv\w*)$"),
    ("dropout masks", r"^aten::(random_|bernoulli_|ge|lt|native_dropout\w*)$"),
    ("element-wise (add, mul, div, where, ...)", r"^aten::(add|add_|addcdiv|addcmul|mul|mul_|div|div_|sub|sub_|where"
                                                 r"|neg|masked_fill_?|clamp\w*|pow|sqrt|rsqrt|exp|log|tanh|sigmoid)$"),
    ("reductions (sum, mean, ...)", r"^aten::(sum|mean|max|min|argmax|amax|norm|nll_loss\w*|cross_entropy\w*)$"),
    ("copies and layout (copy_, cat, index_select, ...)", r"^aten::(copy_|_to_copy|clone|contiguous|cat|index_select"
                                                          r"|index|index_add_|scatter\w*|gather|stack|_unsafe_view"
                                                          r"|embedding\w*|roll|flip|repeat\w*)$"),
    ("fills and allocation", r"^aten::(fill_|zero_|zeros\w*|ones\w*|empty\w*|full\w*|resize_)$"),
    ("optimizer (fused AdamW)", r"^aten::_fused_adam\w*|^Optimizer"),
    ("gradient norms (clipping)", r"^aten::(linalg_vector_norm|_foreach_norm)$"),
)
_COMPILED = [(name, re.compile(pat)) for name, pat in FAMILIES]


def family(op):
    return next((name for name, pat in _COMPILED if pat.search(op)), "other")


def minor_faults():
    """Minor page faults of this process so far (None where the platform does not count them)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# Page faults a profiled step may take and still count as settled: at the 1.3-10 us a fault was measured
# to cost here, at most ~10 ms of kernel time, against seconds for a step that is still growing the heap.
QUIET_FAULTS = 1000


def profile_step(step, tries=6, faults=minor_faults, quiet=QUIET_FAULTS):
    """Run `step()` under torch.profiler until a step faults in at most `quiet` pages (at most `tries`
    steps) and return that last step's {"total_s", "families": [{family, s, share, calls, top: [(op, s)]}],
    "page_faults": [per step], "quiet_faults"}, families sorted by self CPU time (each operator's own work).

    The profiler's own allocations interleave with the step's on the heap, so its first steps grow the
    heap and touch fresh pages: measured at full size, 0.33-0.38 M page faults and 3-4 s of kernel time
    per step, charged to whichever operators write new memory (softmax 1.3-1.5 s instead of 0.25 s)."""
    from torch.profiler import ProfilerActivity, profile

    counts = []
    for _ in range(tries):
        before = faults()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        after = faults()
        counts.append(None if before is None or after is None else after - before)
        if counts[-1] is None or counts[-1] <= quiet:
            break
    per = {}
    for ev in prof.key_averages():
        s = ev.self_cpu_time_total / 1e6
        if s <= 0:
            continue
        f = per.setdefault(family(ev.key), {"s": 0.0, "calls": 0, "ops": {}})
        f["s"] += s
        f["calls"] += ev.count
        f["ops"][ev.key] = f["ops"].get(ev.key, 0.0) + s
    total = sum(f["s"] for f in per.values()) or 1.0
    fams = [{"family": name, "s": f["s"], "share": f["s"] / total, "calls": f["calls"],
             "top": sorted(f["ops"].items(), key=lambda kv: -kv[1])[:3]}
            for name, f in sorted(per.items(), key=lambda kv: -kv[1]["s"])]
    return {"total_s": total, "families": fams, "page_faults": counts, "quiet_faults": quiet}


def print_profile(prof, title):
    print(f"  {title}: self time per operator family, {prof['total_s']:.3f} s in all")
    counts = prof["page_faults"]
    if counts[-1] is not None:
        print(f"    (profiled step {len(counts)}: page faults per profiled step " + ", ".join(map(str, counts))
              + ("; the last still faults in memory, so its times include the kernel's"
                 if counts[-1] > prof["quiet_faults"] else "")
              + ")")
    for f in prof["families"]:
        top = ", ".join(f"{op.removeprefix('aten::')} {s:.3f}" for op, s in f["top"])
        print(f"    {100 * f['share']:5.1f}%  {f['s']:7.3f} s  {f['calls']:6d} calls  {f['family']:48s} {top}")
