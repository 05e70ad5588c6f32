"""What telfilter writes honours the process's umask, as the shipped unit's `UMask=0027` expects (README,
"Packaging for hosts"): files and directories holding subscribers' numbers and texts are then the service's user and
group's only. Each command runs as a subprocess with its umask set, so the runner's own umask does not matter."""
import json
import os
import stat
import subprocess
import sys

from .conftest import ROOT
from .test_ops_cli_edges import _labelled


def _run(*args, umask):
    env = dict(os.environ, TELFILTER_DATA_DIR="/nonexistent-use-explicit-data-dir")
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, preexec_fn=lambda: os.umask(umask))


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_a_trained_model_directory_follows_the_umask(tmp_path):
    """`ml train` without --out: the model directory (its card.json holds training texts, the self-check's: 5656
    reports once they are labelled) was chmod 0755 whatever the umask, listable by every local user under 0027."""
    data = _labelled(tmp_path)
    r = _run("ml", "train", "--data", data, "--no-progress", "--data-dir", tmp_path / "d", umask=0o027)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)["model"]
    assert _mode(out) == 0o750
    assert _mode(os.path.join(out, "card.json")) == 0o640


UMASK_UNTOUCHED = """
import os, sys
def umask(mask):
    raise AssertionError(f"os.umask({mask:o}) called: the process's umask toggled while other threads may create files")
os.umask = umask
from engine.cli import main
sys.exit(main())
"""


def test_a_trained_model_directory_reads_the_umask_without_changing_it(tmp_path):
    """The model directory's mode comes from the umask read (/proc/self/status), not from os.umask(0) then back: the
    process's umask was 0 in between, and a file another thread made then was world-writable."""
    data = _labelled(tmp_path)
    env = dict(os.environ, TELFILTER_DATA_DIR="/nonexistent-use-explicit-data-dir")
    r = subprocess.run([sys.executable, "-c", UMASK_UNTOUCHED, "ml", "train", "--data", str(data), "--no-progress",
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, cwd=ROOT, env=env,
                       preexec_fn=lambda: os.umask(0o027))
    assert r.returncode == 0, r.stderr[-2000:]
    assert _mode(json.loads(r.stdout)["model"]) == 0o750
