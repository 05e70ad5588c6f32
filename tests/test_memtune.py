"""engine/memtune.py: with the mmap threshold fixed, a block of the size of an array freed at a reload comes from a
mapping of its own and goes back to the system when freed; with glibc's dynamic threshold it came from the heap
and stayed (RSS grew in steps at each model reload in the churn soak). Each case in a fresh interpreter."""
import platform
import subprocess
import sys

import pytest

from .conftest import ROOT

SCENARIO = r"""
import sys
sys.path.insert(0, sys.argv[2])
if sys.argv[1] == "fixed":
    from engine.memtune import fix_mmap_threshold
    assert fix_mmap_threshold()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
old = b"x" * (20 << 20)          # an old model's array: mapped; freeing it raises a dynamic threshold to 20 MB
del old
base = rss_mb()
new = [b"y" * (2 << 20) for _ in range(20)]     # the next arrays, 2 MB each
keep = new[-1]
del new                                          # freed, all but the last
print(rss_mb() - base)
"""


def _retained(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCENARIO, mode, str(ROOT)], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_with_the_threshold_fixed_freed_arrays_go_back_to_the_system():
    dynamic = _retained("dynamic")
    if dynamic < 20:
        pytest.skip(f"this glibc gave the memory back with its dynamic threshold too ({dynamic} MB kept)")
    assert _retained("fixed") < 10, "freed 2 MB arrays stayed in the heap with the threshold fixed"


def test_serve_fixes_the_threshold_before_it_reads_the_model():
    src = (ROOT / "engine" / "serve.py").read_text()
    body = src[src.index("async def run_serve"):]
    assert body.index("fix_mmap_threshold()") < body.index("build(")
