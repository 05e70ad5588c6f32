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
