"""release_free_heap gives the pages of freed heap holes back to the OS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polyglot_llama.train.heap import _malloc_trim

ROOT = Path(__file__).resolve().parents[3]

# 200 tensors of 1 MiB from the heap (a fixed mmap threshold of 64 MiB keeps them off mmap), each followed by a
# small tensor that stays: freeing the large ones leaves 200 holes glibc cannot give back from the heap's top.
CHILD = """
import ctypes, sys, torch
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from polyglot_llama.train.heap import release_free_heap
ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 2**20)  # M_MMAP_THRESHOLD
def rss_mib():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20
large, small = [], []
for _ in range(200):
    large.append(torch.ones(2**18))
    small.append(torch.ones(16))
large.clear()
freed = rss_mib()
release_free_heap()
print(freed - rss_mib())
"""


@pytest.mark.skipif(_malloc_trim() is None or not Path("/proc/self/statm").exists(), reason="glibc on Linux only")
def test_release_free_heap_returns_the_holes_pages():
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, check=True)
    returned_mib = float(out.stdout.strip().splitlines()[-1])
    assert returned_mib > 150  # of the 200 MiB freed
