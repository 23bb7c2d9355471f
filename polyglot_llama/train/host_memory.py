"""Host (CPU) memory that training frees goes back to the OS at once instead of staying in glibc's heap.

glibc serves a request below its mmap threshold from its heap and keeps the memory when it is freed; the
threshold starts at 128 KiB and rises to the size of every mapped block freed, up to 32 MiB. A training step
frees hundreds of 1-32 MiB activations, so after the first step they all come from the heap, the AdamW
states made in step 1 land between their holes, and the resident size grows above the live tensors step
after step (~0.9 GB on the SmolLM2-135M shape at 2 × 512 tokens). A fixed 1 MiB threshold maps every tensor
of 1 MiB or more on its own and unmaps it when freed, so the peak resident size follows the live tensors.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 2**20


def map_large_allocations() -> bool:
    """Fix glibc's mmap threshold at 1 MiB for this process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
