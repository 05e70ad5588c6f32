"""`python -m tests.test_sip_fuzz SECONDS [SEED]`, the long time-boxed mutation run of tests/fuzz/README.md, made its
data dir with tempfile.mkdtemp and never removed it: a tmpXXXXXXXX left in /tmp by each run."""
import os
import subprocess
import sys
from pathlib import Path


def test_the_long_run_leaves_nothing_in_tmpdir(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tests.test_sip_fuzz", "0.2"], cwd=Path(__file__).resolve().parent.parent,
                       env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "no failure" in p.stdout, p.stderr[-2000:]
    assert sorted(x.name for x in tmp_path.iterdir()) == []
