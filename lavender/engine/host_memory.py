"""Keep freed host memory in the process so that CPU training reuses it instead of faulting it in afresh."""
import ctypes
import logging
import resource

log = logging.getLogger("lavender")

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_GLIBC_MMAP_MAX, _GLIBC_DYN_MMAP_THRESHOLD_MAX = 65536, 32 * 2 ** 20


def _libc_function(name):
    """glibc's `name` (mallopt, malloc_trim), or None where the C library has no such function."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def release_freed_memory():
    """Return the heap's free memory to the system now (glibc's malloc_trim; elsewhere nothing)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def set_retain_freed_memory(retain: bool = True) -> bool:
    """Serve every allocation from the C heap and never give freed memory back to the kernel (glibc).

    glibc maps blocks over 32 MB (activations, gradients, the embedding gradient) with mmap and unmaps
    them on free, so every training step on the CPU faults its large tensors in again as zeroed pages:
    at the demo size ~29k page faults and 0.1 s of kernel time per step. The price: the resident set
    stays at the largest step's peak (bounded by :class:`RetainedHeap`). ``retain=False`` restores what
    glibc settles to by default: blocks over 32 MB mapped afresh, the heap's top trimmed when over
    64 MB of it is free (benchmarks compare the two). Returns False, changing nothing, where the C
    library is not glibc.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    if retain:  # -1 (as size_t: no size reaches it) never trims; INT_MAX did once 2.1 GB were free at the top
        settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
    else:
        settings = ((_M_MMAP_MAX, _GLIBC_MMAP_MAX), (_M_MMAP_THRESHOLD, _GLIBC_DYN_MMAP_THRESHOLD_MAX),
                    (_M_TRIM_THRESHOLD, 2 * _GLIBC_DYN_MMAP_THRESHOLD_MAX))
    return all(mallopt(param, value) == 1 for param, value in settings)


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class RetainedHeap:
    """CPU training's host memory: freed memory retained (:func:`set_retain_freed_memory`), within a bound.

    A heap that never gives memory back can fragment: glibc's aligned allocations do not fit exactly
    into the holes their predecessors left, so a pattern of large blocks with small long-lived ones
    between them grows the heap step after step. `after_step` watches the resident set and, when it
    exceeds `slack` times what it was after the first `settle` steps, returns the heap's free memory
    to the system (malloc_trim) and starts watching anew. Does nothing where retention is not in effect.
    """

    def __init__(self, slack=1.5, settle=3):
        self.active = set_retain_freed_memory(True)
        self.slack, self.settle, self.steps, self.base, self.trims = slack, settle, 0, 0, 0

    def after_step(self):
        if not self.active:
            return
        self.steps += 1
        rss = _resident_bytes()
        if self.steps <= self.settle:
            self.base = max(self.base, rss)
        elif rss > self.slack * self.base:
            release_freed_memory()
            self.trims += 1
            self.steps, self.base = 0, 0
            log.debug("host memory: resident set %.1f GB, freed memory returned (%d times)", rss / 1e9, self.trims)
