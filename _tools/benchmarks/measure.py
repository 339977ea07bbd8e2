"""What the benchmarks measure with: the device's published peak, the matmul rate, peak memory, model FLOPs,
and the recorder that replays a step's own matrix products."""
from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from lavender.engine.host_memory import release_freed_memory

ROOT = Path(__file__).resolve().parents[2]  # the repository


# Published dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by device-name fragment; first match wins.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756), ("H100", 989), ("H200", 989), ("A100", 312), ("L40S", 362), ("L4", 121),
                    ("B200", 2250))


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


def _timed(fn, dev):
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def _require_device(device):
    """torch.device(device); a clear exit when it is a GPU that is not there."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is "
                         f"False; torch {torch.__version__}); run without --device cuda on this machine")
    return dev
