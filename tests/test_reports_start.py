"""A start-up rebuilds the 5656 report index from reports.jsonl reading the index's window and what came since
the last start-up (the checkpoint `reports.jsonl.start`), not the file's whole history, and gives the answers a
replay of the whole file gives; a report replicated late (older than the lines before it) is still read, and a
checkpoint that does not match the file is ignored."""
import json
import os
import random
from datetime import datetime, timezone

from engine.lists import reports as R
from engine.lists.reports import ReportIndex, ReportStore
from engine.numbers import normalise_number

T0 = 1_735_689_600            # a UTC midnight (2025-01-01: the histories here end before the clock)
DAY = 86400
NUMBERS = range(84_980_000_000, 84_980_000_300)


def _rec(ts, reporter, reported, kind="S"):
    return {"reporter": reporter, "reported": reported, "content": "Vay tien nhanh lai suat thap",
            "time": datetime.fromtimestamp(ts, timezone.utc).isoformat(), "kind": kind, "label": None}


def _whole(path) -> ReportIndex:
    """The index a replay of every line gives (what load_index did before the checkpoint)."""
    idx = ReportIndex()
    for line in path.read_bytes().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("kind") in ("S", "V"):
            idx.add(normalise_number(r["reported"]), str(r["reporter"]), R._timestamp(r["time"]))
    return idx


def _days(store, first, days, per_day=40, seed=7):
    rnd = random.Random(seed)
    store.append_many(_rec(T0 + d * DAY + i * (DAY // per_day), f"+849120{rnd.randrange(400):05d}",
                           f"+849800{rnd.randrange(300):05d}", "FW" if i % 17 == 0 else "S")
                      for d in range(first, first + days) for i in range(per_day))
    return T0 + (first + days) * DAY - DAY // per_day          # the newest report's time


def _load_counting(store, monkeypatch):
    read = []
    real = json.loads
    monkeypatch.setattr(R.json, "loads", lambda b: read.append(1) or real(b))
    try:
        return store.load_index(), len(read)
    finally:
        monkeypatch.setattr(R.json, "loads", real)


def _same(a, b, now):
    for n in NUMBERS:
        for window in (DAY, 7 * DAY, 30 * DAY, 90 * DAY):
            assert a.distinct_reporters(n, now, window) == b.distinct_reporters(n, now, window), (n, window)


def test_a_restart_reads_the_window_and_what_came_since_and_answers_as_a_whole_replay(tmp_path, monkeypatch):
    store = ReportStore(tmp_path)
    path = tmp_path / "reports.jsonl"
    newest = _days(store, 0, 240)
    idx, read = _load_counting(store, monkeypatch)          # no checkpoint yet: every line
    lines = len(path.read_bytes().splitlines())
    assert read >= lines
    _same(idx, _whole(path), newest)
    off, bound, _ino, _d = (tmp_path / "reports.jsonl.start").read_text().split()
    assert float(bound) == newest - 97 * DAY
    with open(path, "rb") as f:
        before = f.read(int(off)).splitlines()
        assert R._timestamp(json.loads(f.readline())["time"]) >= float(bound)
    assert all(R._timestamp(json.loads(x)["time"]) < float(bound) for x in before)
    newest = _days(store, 240, 10, seed=8)                  # ten more days, then a restart
    idx, read = _load_counting(store, monkeypatch)
    assert read < 0.5 * len(path.read_bytes().splitlines())
    _same(idx, _whole(path), newest)


def test_reports_replicated_late_are_read_wherever_they_are(tmp_path, monkeypatch):
    """A node cut off from the others appends their reports when it is reached again, older than the lines
    before them: the checkpoint never skips past a line in the window."""
    store = ReportStore(tmp_path)
    _days(store, 0, 150)
    late = [_rec(T0 + 149 * DAY - 80 * DAY + j, f"+849130{j:05d}", "+84980099999") for j in range(3)]
    store.append_many(late)                                  # 80 days old when they arrive
    newest = _days(store, 150, 5, seed=9)
    store.load_index()
    idx = store.load_index()                                 # (from the checkpoint the first wrote)
    assert idx.distinct_reporters(84_980_099_999, newest, 90 * DAY) == 3
    _same(idx, _whole(tmp_path / "reports.jsonl"), newest)


def test_a_checkpoint_that_does_not_match_the_file_is_ignored(tmp_path, monkeypatch):
    store = ReportStore(tmp_path)
    path = tmp_path / "reports.jsonl"
    newest = _days(store, 0, 200)
    store.load_index()
    assert (tmp_path / "reports.jsonl.start").exists()
    data = path.read_bytes()
    off = int((tmp_path / "reports.jsonl.start").read_text().split()[0])
    path.write_bytes(data[:off - 40] + b"X" * 40 + data[off:])      # the bytes before it changed (same inode)
    idx, read = _load_counting(store, monkeypatch)
    assert read >= len(data.splitlines()) - 1
    os.replace(path, tmp_path / "old")                       # a restored file: another inode
    path.write_bytes(data)
    idx, read = _load_counting(store, monkeypatch)
    assert read >= len(data.splitlines())
    _same(idx, _whole(path), newest)
    (tmp_path / "reports.jsonl.start").write_text("garbage\n")
    assert store.load_index().distinct_reporters(84_980_000_001, newest, 90 * DAY) == \
        _whole(path).distinct_reporters(84_980_000_001, newest, 90 * DAY)


def test_a_read_only_data_dir_still_loads(tmp_path, monkeypatch, caplog):
    store = ReportStore(tmp_path)
    newest = _days(store, 0, 120)
    monkeypatch.setattr(R.os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError(13, "read-only")))
    idx = store.load_index()
    assert "start-up checkpoint not written" in caplog.text
    _same(idx, _whole(tmp_path / "reports.jsonl"), newest)


def test_a_report_dated_ahead_never_moves_the_checkpoint_past_the_window(tmp_path, monkeypatch):
    """Found by a review: one report dated 2099 (from `check --jsonl`, or a peer whose clock runs ahead) set the
    checkpoint at itself, and every later start-up skipped every earlier report for good."""
    store = ReportStore(tmp_path)
    newest = _days(store, 0, 150)
    monkeypatch.setattr(R.time, "time", lambda: newest + 3600)
    store.append(_rec(4_084_000_000, "+84912099999", "+84980000001"))        # 2099
    store.load_index()
    store.append(_rec(newest + 60, "+84912099998", "+84980000002"))           # it leaves the file's tail later
    for _ in range(2):
        idx = store.load_index()
        _same(idx, _whole(tmp_path / "reports.jsonl"), newest + 3600)
    from hashlib import blake2b
    data = (tmp_path / "reports.jsonl").read_bytes()
    off = data.rindex(b"\n", 0, len(data) - 1) + 1                          # the last line's start
    digest = blake2b(data[max(0, off - R._DIGEST_BYTES):off], digest_size=16).hexdigest()
    (tmp_path / "reports.jsonl.start").write_text(                            # one a clock ahead wrote
        f"{off} {newest} {os.stat(tmp_path / 'reports.jsonl').st_ino} {digest}\n")
    assert store._checkpoint(open(tmp_path / "reports.jsonl", "rb")) == (off, newest)       # (it matches the file)
    _same(store.load_index(), _whole(tmp_path / "reports.jsonl"), newest + 3600)      # but its bound is not trusted
