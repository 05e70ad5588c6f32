"""More logs than a reading held open from its start (logfiles.held_most: 512, within half the open-files limit): the
rest were opened by name when reached, so a logrotate meanwhile (the live log renamed .1, the .1 renamed .2 ...)
gave each such name the next newer log: its lines counted twice in the report, the oldest log's not at all. Now every
regular log is held from the start: the soft limit is raised toward the hard one when the logs need it, and when even
the hard one cannot hold them the reading is refused before anything is read or written (exit 2), naming the limit."""
import json
import os
import resource
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import ROOT

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
N = 40                  # logs: more than half a soft limit of 64


def _logs(tmp_path):
    """verdicts.log (newest), verdicts.log.1 ... .39 (oldest): one record each, n = its suffix (0 the live log)."""
    paths = []
    for k in range(N):
        p = tmp_path / ("verdicts.log" if k == 0 else f"verdicts.log.{k}")
        p.write_text(json.dumps({"ts": (T0 - timedelta(days=k)).isoformat(), "kind": "sms", "action": "allow",
                                 "hits": [], "n": k}) + "\n")
        paths.append(str(p))
    return paths


READ = r"""
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
from engine.report.reader import Malformed, read_verdicts
paths, merged = json.loads(sys.argv[3]), sys.argv[4] == "1"
got = []
for ts, rec in read_verdicts(paths, Malformed(), progress=False, merged=merged):
    got.append(rec["n"])
    if len(got) == 1:                                   # logrotate runs now
        for k in range(len(paths) - 1, 0, -1):
            os.rename(paths[k], paths[0] + f".{k + 1}")
        os.rename(paths[0], paths[0] + ".1")
        open(paths[0], "w").close()
print(json.dumps(got))
"""


@pytest.mark.parametrize("merged", [False, True], ids=["report", "verdicts"])
def test_every_log_is_read_as_it_was_named_past_half_the_soft_limit(tmp_path, merged):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("needs a hard fd limit of 4,096 or more")
    paths = _logs(tmp_path)
    p = subprocess.run([sys.executable, "-c", READ, "64", "4096", json.dumps(paths), "1" if merged else "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert sorted(got) == list(range(N)), got           # each log once: none twice, none left out


def test_more_logs_than_the_hard_limit_holds_are_refused_before_anything_is_read(tmp_path):
    paths = _logs(tmp_path)
    out = tmp_path / "report"
    p = subprocess.run([sys.executable, "-m", "engine.cli", "report", "--no-progress", "--out", str(out),
                        "--log", *paths], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "40 logs" in p.stderr and "open-files limit" in p.stderr and "ulimit -n" in p.stderr, p.stderr
    assert not out.exists()                             # nothing written
