"""Host memory of CPU training (lavender/engine/host_memory.py): freed activations are reused without page
faults in the next step, and the retained heap is bounded."""
import platform

import pytest

from lavender.engine import host_memory
from lavender.engine.host_memory import RetainedHeap

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

MB = 2 ** 20


_STEPS = """
import json, resource
import torch
from lavender.engine.host_memory import RetainedHeap, set_retain_freed_memory
MB = 2 ** 20

def step_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    acts = [torch.ones(n * MB // 4) for n in (48, 40, 8, 1, 64)]
    del acts
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

assert set_retain_freed_memory(False)  # glibc's own steady state
default = [step_faults() for _ in range(4)]
heap = RetainedHeap()
assert heap.active
print(json.dumps({"default": default, "retained": [step_faults() for _ in range(6)]}))
"""


def _run(script):
    """`script` in a fresh Python: its heap is not shaped by the tests that ran before in this process."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout


def test_freed_memory_is_reused_without_page_faults():
    """Page faults of a training-like step: tensors over glibc's 32 MB mmap threshold and smaller ones,
    written, then all freed (161 MB: ~41k pages)."""
    import json

    pages = 161 * MB // 4096
    faults = json.loads(_run(_STEPS))
    assert faults["default"][-1] > pages // 2, faults  # the large blocks are mapped afresh, zero-filled
    # after a few steps the heap has room for a step: most steps fault nothing, and none comes near
    # glibc's > pages / 2
    retained = faults["retained"]
    assert sorted(retained[-3:])[1] < pages // 40 and max(retained[-3:]) < pages // 10, faults


def test_retained_heap_is_trimmed_when_the_resident_set_grows(monkeypatch):
    rss = iter([1.0, 1.1, 1.0, 1.2, 1.64, 1.0, 1.0, 1.0, 1.4, 1.6])  # GB after each step
    monkeypatch.setattr(host_memory, "_resident_bytes", lambda: next(rss) * 1e9)
    heap = RetainedHeap(slack=1.45, settle=3)
    for _ in range(5):
        heap.after_step()
    assert heap.trims == 1  # base 1.1 GB (the first 3 steps), 1.64 > 1.45 x 1.1
    for _ in range(5):
        heap.after_step()
    assert heap.trims == 2  # watched anew: base 1.0 GB, 1.4 stays under 1.45 x 1.0, 1.6 does not


_FREE_AT_TOP = """
import ctypes
from lavender.engine.host_memory import _resident_bytes, set_retain_freed_memory
assert set_retain_freed_memory(True)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.memset.argtypes, libc.free.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t], [ctypes.c_void_p]
n = 2400 * 2 ** 20  # the top of the heap, freed at once, as at the end of a full-size step
p = libc.malloc(n); libc.memset(p, 1, n); libc.free(p)
print(_resident_bytes())
"""


def test_more_than_2_gb_freed_at_the_heaps_top_is_retained():
    """INT_MAX as glibc's trim threshold (2.1 GB) gave a full-size step's freed top back to the kernel,
    so the next step faulted it in again (measured at full size: 0.54-0.64 M page faults, 1.7-3.1 s of kernel time)."""
    out = _run(_FREE_AT_TOP)
    assert int(out) > 2400 * MB, out  # the resident set still holds the freed block
