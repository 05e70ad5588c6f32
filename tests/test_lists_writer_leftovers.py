"""A list writer killed half-way (kill -9, the OOM killer: a `lists import` of a big DNC file, serve's journal fold)
leaves its temporary files in the lists directory; the next writer, holding the same write lock the dead one held
while they existed, removes them. Before, each such crash left a snapshot-sized file for good (a 10M-number DNC
generation is ~tens of MB; each crash a new name, by its pid), and nothing ever swept them. A writer that fails
(a full disk) removes its own at once."""
import os
import signal
import subprocess
import sys

import pytest

from engine.lists import ListStore

from .conftest import ROOT

# the child: a writer killed at the fsync of the named temporary file (its data written, not yet renamed in)
_KILLED_AT = r"""
import os, signal, sys, time
from pathlib import Path
from engine.lists import ListStore
from engine.lists.journal import append_lines
stage = sys.argv[2]
real = os.fsync
def fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if name.endswith(f"{stage}.tmp{os.getpid()}"):
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd)
os.fsync = fsync
store = ListStore(Path(sys.argv[1]))
store.append_delta("add", 84900000001, "S")
# (a 5656 command's line: its digest is kept in dnc.delta.recent by the fold)
append_lines(store.delta_path, store.journal_lock,
             [("add", 84900000004, "S", {"mo_digest": "aa" * 8, "at": time.time()})])
store.add("dnc", "0912000002", "V")
"""


def _leftovers(d):
    return sorted(p.name for p in (d / "lists").iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("stage", ["dnc.snap", "dnc.delta", "dnc.delta.prev", "dnc.delta.recent"])
def test_the_next_writer_removes_what_a_killed_writer_left(data_dir, stage):
    store = ListStore(data_dir)
    store.add("dnc", "0912000001", "S")              # a snapshot and a journal already there
    p = subprocess.run([sys.executable, "-c", _KILLED_AT, str(data_dir), stage], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _leftovers(data_dir), "the kill left no temporary file: the test did not reach its point"
    store.add("dnc", "0912000003", "S")              # the next writer
    assert _leftovers(data_dir) == []
    L = store.load()
    assert {84900000001, 84900000004, 84912000001, 84912000003} <= set(L.dnc_s)


def test_a_file_that_only_looks_like_a_leftover_is_kept(data_dir):
    """Only the writers' own temporary names go: not another file an operator keeps in the lists directory."""
    store = ListStore(data_dir)
    store.add("dnc", "0912000001", "S")
    keep = [data_dir / "lists" / n for n in ("dnc.snap.tmpcopy", "notes.tmp123", "dnc.stream-id.tmp")]
    for k in keep:
        k.write_bytes(b"x")
    store.add("dnc", "0912000003", "S")
    assert all(k.exists() for k in keep)


@pytest.mark.parametrize("fails", ["link", "replace"])
def test_a_writer_that_fails_half_way_leaves_no_temporary_file_and_the_lists_as_they_were(data_dir, monkeypatch,
                                                                                       fails):
    """A full disk at the link that keeps the previous generation, or at a rename (the journal's rewrite): the
    error is raised, nothing is half-installed, and the prepared files do not stay to keep the disk full."""
    store = ListStore(data_dir)
    store.add("dnc", "0912000001", "S")
    store.append_delta("add", 84900000001, "S")
    real = getattr(os, fails)
    seen = []

    def full(a, b, *args, **kw):
        seen.append(str(b))
        if str(b).endswith("dnc.snap.prev.tmp%d" % os.getpid() if fails == "link" else "dnc.delta"):
            raise OSError(28, "No space left on device")
        return real(a, b, *args, **kw)
    monkeypatch.setattr(os, fails, full)
    with pytest.raises(OSError):
        store.add("dnc", "0912000003", "S")
    monkeypatch.undo()
    assert _leftovers(data_dir) == []
    L = store.load()
    assert {84900000001, 84912000001} <= set(L.dnc_s)
    store.add("dnc", "0912000004", "S")
    assert {84900000001, 84912000001, 84912000004} <= set(store.load().dnc_s)
