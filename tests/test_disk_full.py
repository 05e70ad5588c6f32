"""A nearly full disk (os.write writing part of what it was given, then ENOSPC/EFBIG) never leaves a
record that was reported written but is not: the DNC journal, reports.jsonl and the state journal cut
a failed append back and raise; a 5656 DK DNC that could not be journalled is not in force and is
answered "retry"; a failed state snapshot does not write its records twice; `--out` files are
replaced whole or left alone; a list snapshot is never missing between two renames.

The disk is simulated with RLIMIT_FSIZE (SIGXFSZ ignored): a write past the limit writes what fits
and returns a short count, the next one fails with EFBIG, as on a full file system."""
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from engine.durable import append_all
from engine.lists import ListStore
from engine.lists.reports import ReportStore
from engine.state.embedded import EmbeddedStore

NS, W, LIM = "AD_FREQUENCY_CAP|owner+recipient|24h|None", 86400.0, 3
T0 = 1_790_000_000
KEY = ("o:shop", 84912000001)


@contextmanager
def disk_full_after(nbytes: int):
    """Writes may reach `nbytes` bytes of file size, no further (this process, until the block ends)."""
    old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_sig)


def test_append_all_writes_everything_or_cuts_back(tmp_path):
    p = tmp_path / "j"
    p.write_bytes(b"first\n")
    fd = os.open(p, os.O_RDWR | os.O_APPEND)
    try:
        with disk_full_after(10), pytest.raises(OSError):
            append_all(fd, b"second record\n")          # 4 bytes would fit: none may stay
        assert p.read_bytes() == b"first\n"
        append_all(fd, b"second record\n")
    finally:
        os.close(fd)
    assert p.read_bytes() == b"first\nsecond record\n"


def test_dnc_journal_append_is_all_or_nothing(tmp_path):
    st = ListStore(tmp_path)
    st.append_delta("add", 84912000001, "SV")
    size = st.delta_path.stat().st_size
    with disk_full_after(size + 10), pytest.raises(OSError):
        st.append_delta("add", 84912000002, "SV")
    assert st.delta_path.stat().st_size == size
    st.append_delta("add", 84912000003, "SV")
    L = ListStore(tmp_path).load()
    assert L.in_dnc(84912000001, "S") and L.in_dnc(84912000003, "S") and not L.in_dnc(84912000002, "S")
    assert not (tmp_path / "lists" / "dnc.delta.rejected").exists()


def test_reports_append_is_all_or_nothing(tmp_path):
    rs = ReportStore(tmp_path)
    rec = {"reporter": "+84912000001", "reported": "+84912000002", "content": "x", "time": "2026-03-02T08:00:00+07:00",
           "kind": "S", "label": None}
    rs.append(rec)
    size = rs.path.stat().st_size
    with disk_full_after(size + 10), pytest.raises(OSError):
        rs.append(dict(rec, reporter="+84912000003"))
    rs.append(dict(rec, reporter="+84912000004"))
    lines = rs.path.read_text().splitlines()
    assert [json.loads(x)["reporter"] for x in lines] == ["+84912000001", "+84912000004"]


def test_reports_append_after_a_torn_line_starts_a_new_line(tmp_path):
    rs = ReportStore(tmp_path)
    rs.path.parent.mkdir(parents=True, exist_ok=True)
    rs.path.write_bytes(b'{"reporter": "+8491')                # what a crash mid-write left
    rs.append({"reporter": "+84912000004", "reported": "+84912000002", "content": "x",
               "time": "2026-03-02T08:00:00+07:00", "kind": "S", "label": None})
    assert json.loads(rs.path.read_text().splitlines()[-1])["reporter"] == "+84912000004"


def test_state_journal_short_write_keeps_the_records_for_the_next_flush(tmp_path):
    async def main():
        s = EmbeddedStore(tmp_path)
        s.counters.add(NS, KEY, T0, W, LIM)
        await s.flush()
        size = s._seg_path(s.seg).stat().st_size
        s.counters.add(NS, KEY, T0 + 10, W, LIM)
        with disk_full_after(size + 5), pytest.raises(OSError):
            await s.flush()
        assert len(s.buf) == 1 and s._seg_path(s.seg).stat().st_size == size
        s.counters.add(NS, KEY, T0 + 20, W, LIM)
        await s.flush()
        os.close(s._lockfd)                                     # kill -9: no snapshot
        s2 = EmbeddedStore(tmp_path)
        assert s2.warnings == []
        return s2.counters.count(NS, KEY, T0 + 30, W, LIM)
    assert asyncio.run(main()) == 3


@pytest.mark.parametrize("fork", [False, True])
def test_failed_state_snapshot_does_not_write_its_records_twice(tmp_path, fork):
    async def main():
        s = EmbeddedStore(tmp_path)
        s.counters.add(NS, KEY, T0, W, LIM)
        s.counters.add(NS, KEY, T0 + 60, W, LIM)
        # the tail (one small frame) fits in its segment, the snapshot (a bigger file) does not
        with disk_full_after(400):
            if fork:                # written by a forked child: its failure is counted and logged
                await s.snapshot()
                await s.settled()
                assert s.write_errors == 1
            else:
                with pytest.raises(OSError):
                    await s.snapshot(fork=False)
        assert s.buf == [] and not (tmp_path / "state" / "snapshot").exists()
        # and the half-written file is gone: left behind, it would keep the disk full for every flush after
        assert not list((tmp_path / "state").glob("snapshot.tmp*"))
        await s.flush()
        os.close(s._lockfd)                                     # kill -9
        s2 = EmbeddedStore(tmp_path)
        return s2.counters.count(NS, KEY, T0 + 120, W, LIM), s2.replayed
    assert asyncio.run(main()) == (2, 2)


def test_dk_dnc_that_cannot_be_journalled_is_not_in_force_and_asks_for_a_retry(tmp_path):
    from engine.app import build
    from engine.pipeline import NotRecorded
    from engine.verdict import Message
    pipe = build(data_dir=tmp_path, with_model=False)
    t = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=7)))
    pipe.store.append_delta("add", 84900000000, "SV")             # the journal exists
    size = pipe.store.delta_path.stat().st_size
    with disk_full_after(size + 5), pytest.raises(NotRecorded):
        pipe.judge(Message("0912000001", "5656", "DK DNC", t, "", "mo"))
    assert not pipe.lists.in_dnc(84912000001, "S")
    v = pipe.judge(Message("0912000001", "5656", "DK DNC", t, "", "mo"))   # the SMSC's redelivery
    assert v.hits[0].symbol == "DNC_REGISTERED"
    assert pipe.lists.in_dnc(84912000001, "S") and ListStore(tmp_path).load().in_dnc(84912000001, "S")


def test_list_snapshot_exists_at_every_step_of_an_install(tmp_path, monkeypatch):
    """A crash just before the new generation is renamed in (simulated: that rename fails) leaves
    the current generation loadable as it was."""
    st = ListStore(tmp_path)
    st.import_csv("dnc", b"number,channel\n0912000001,SV\n", "dnc.csv")
    st.import_csv("dnc", b"number,channel\n0912000002,SV\n", "dnc.csv")
    real = os.replace

    def crash_on_install(src, dst):
        if str(dst).endswith("dnc.snap") and ".prev" not in str(src):
            raise OSError(5, "simulated crash")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", crash_on_install)
    with pytest.raises(OSError):
        st.import_csv("dnc", b"number,channel\n0912000003,SV\n", "dnc.csv")
    monkeypatch.setattr(os, "replace", real)
    st2 = ListStore(tmp_path)
    L = st2.load(strict=True)
    assert L.in_dnc(84912000002, "S") and not L.in_dnc(84912000003, "S")
    st2.import_csv("dnc", b"number,channel\n0912000004,SV\n", "dnc.csv")     # later writes work


def test_lists_export_out_is_replaced_whole_or_left_alone(tmp_path):
    data, zone = tmp_path / "data", tmp_path / "zone.txt"
    env = dict(os.environ)
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine.cli", *a, "--data-dir", str(data)],
                                    capture_output=True, text=True, env=env)
    bl = tmp_path / "bl.csv"
    bl.write_text("kind,value\ndomain,spam.example\n")
    assert run("lists", "import", "blacklist", str(bl)).returncode == 0, "import"
    r = run("lists", "export", "blacklist", "--format", "rbldnsd", "--out", str(zone))
    assert r.returncode == 0, r.stderr
    good = zone.read_text()
    assert "spam.example" in good
    snap = data / "lists" / "blacklist.snap"
    b = bytearray(snap.read_bytes())
    b[-1] ^= 0xFF                                               # a section no longer matches its CRC
    snap.write_bytes(bytes(b))
    (data / "lists" / "blacklist.snap.prev").unlink(missing_ok=True)
    r = run("lists", "export", "blacklist", "--format", "rbldnsd", "--out", str(zone))
    assert r.returncode != 0 and "refusing snapshot" in r.stderr
    assert zone.read_text() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_snapshot_that_does_not_fit_leaves_no_temporary_file(tmp_path):
    st = ListStore(tmp_path)
    st.import_csv("dnc", b"number,channel\n0912000001,SV\n", "dnc.csv")
    before = sorted(p.name for p in (tmp_path / "lists").iterdir())
    rows = b"number,channel\n" + b"".join(b"09120%05d,SV\n" % i for i in range(20000))
    with disk_full_after(64), pytest.raises(OSError):
        st.import_csv("dnc", rows, "dnc.csv")
    assert sorted(p.name for p in (tmp_path / "lists").iterdir()) == before
    assert ListStore(tmp_path).load(strict=True).in_dnc(84912000001, "S")


def test_a_stop_on_a_full_disk_says_what_state_it_lost_and_still_finishes(tmp_path):
    """SIGTERM while the data dir's disk is full: the stop's snapshot cannot be written. serve used to end
    there with `telfilter serve: [Errno 28] No space left on device` (exit 2, the status of a start-up error),
    the rest of the stop skipped (the verdict log's close) and nothing saying the ads counted since the last
    journal write were gone (after the restart the 4th ad to each of 10 recipients went through). Found by a
    black-box probe with the data dir on a full 4 MB tmpfs. Now it says how many counter updates are lost,
    finishes the stop and exits 1."""
    from tests.durable_helpers import _Node, _submit_ad
    flag = tmp_path / "disk-full"
    boot = ("import errno, os, engine.state.embedded as E\n"
            "real = E.append_all\n"
            "def full(fd, data):\n"
            f"    if os.path.exists({str(flag)!r}):\n"
            "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "    return real(fd, data)\n"
            "E.append_all = full\n"
            "real_snap = E.write_snapshot_tmp\n"       # the snapshot too (with room for it, the stop saves the state
            "def snap_full(tmp, obj):\n"              # the journal refused: test_state_stop_snapshot_when_journal_fails)
            f"    if os.path.exists({str(flag)!r}):\n"
            "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "    return real_snap(tmp, obj)\n"
            "E.write_snapshot_tmp = snap_full\n"
            "from engine.cli import main; raise SystemExit(main())")
    node = _Node(tmp_path, boot=boot)
    try:
        p, port = node.start()
        flag.touch()
        assert _submit_ad(port, "84912000777") == 0
        time.sleep(0.6)                               # the journal write fails (logged) and waits for a retry
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
        err = (tmp_path / "stderr1.log").read_text()
        assert rc == 1, err[-2000:]
        assert "state could not be saved at the stop" in err and "counter updates never written" in err, err[-2000:]
        assert "stopped, state not saved" in err
    finally:
        node.stop()
