"""A lists reload of a running serve reads again only the lists whose snapshot files changed (engine/lists/reuse.py):
a `lists add blacklist` of one domain re-read a 200k-row registry, 1M blacklist entries and a 10M DNC, 1.2-2.7 s of
a worker thread holding the GIL in turns. Small lists here; the figures are in the README's Known limits."""
from __future__ import annotations

import asyncio
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.control import ControlServer
from engine.lists import ListStore
from engine.serve import reload_lists
from engine.verdict import Message

from .test_lists_reload_cost import _unfrozen  # noqa: F401  (autouse: what a reload froze goes back to the collector)

T = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=7)))


def _pipe(tmp_path):
    d = tmp_path / "d"
    store = ListStore(d)
    store.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nBR1,Owner,QC,,,\nBR2,Other,CSKH,,,\n")
    store.import_csv("blacklist", b"kind,value\ndomain,aaa.example\nnumber,0912999999\ncidr,192.0.2.0/24\n")
    store.import_csv("dnc", b"number,channel\n0912000001,S\n0912000002,SV\n")
    store.import_csv("consent", b"owner,number\nOwner,0912000003\n")
    store.append_delta("add", 84912000004, "V")
    return build(None, d, with_model=False, seed=False)


def _reload(pipe, caplog, **kw):
    with caplog.at_level("INFO"):
        caplog.clear()
        assert asyncio.run(reload_lists(pipe, **kw)) is None
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lists reloaded")]
    assert len(said) == 1, said
    return said[0]


def test_a_change_to_one_list_reads_that_list_alone_and_gives_what_a_full_reload_gives(tmp_path, caplog):
    pipe = _pipe(tmp_path)
    before = pipe.lists
    pipe.store.add("blacklist", "bbb.example")
    line = _reload(pipe, caplog)
    assert line.endswith("; read again: blacklist; kept: dnc, senders, consent, mlexempt"), line
    L = pipe.lists
    assert L is not before and L.bl_domains == {"aaa.example", "bbb.example"}
    assert L.senders is before.senders and L.consent is before.consent and L.dnc_s is before.dnc_s
    assert L.journal_mark == before.journal_mark
    assert L == ListStore(pipe.store.dir).load()                 # what a full read of the files gives
    r = pipe.lists_reloads
    assert r["last_read"] == ["blacklist"] and r["last_kept"] == ["dnc", "senders", "consent", "mlexempt"]
    line = _reload(pipe, caplog)                                 # nothing changed since: nothing read
    assert line.endswith("; read again: none; kept: dnc, senders, blacklist, consent, mlexempt"), line
    assert pipe.lists == L and pipe.lists.bl_domains is L.bl_domains
    line = _reload(pipe, caplog, full=True)                      # forced: every list read again, the same result
    assert line.endswith("; read again: dnc, senders, blacklist, consent, mlexempt; kept: none"), line
    assert pipe.lists == L and pipe.lists.senders is not L.senders
    # (the set this full reload replaced shared its lists with L, which the test still holds: freeing the replaced
    # set's registry emptied L's, a set someone held, `ctl stats` reading it in a worker thread)
    assert len(L.senders) == 2 and L.bl_domains == {"aaa.example", "bbb.example"}
    assert pipe.lists_reloads["read"] == {"blacklist": 2, "dnc": 1, "senders": 1, "consent": 1, "mlexempt": 1}
    assert pipe.lists_reloads["kept"] == {"dnc": 2, "senders": 2, "consent": 2, "blacklist": 1, "mlexempt": 2}


def _same_size_generation(pipe, tmp_path):
    """A blacklist snapshot of the same size as the one in force, with another domain (bytes)."""
    other = ListStore(tmp_path / "other")
    other.import_csv("blacklist", b"kind,value\ndomain,zzz.example\nnumber,0912999999\ncidr,192.0.2.0/24\n")
    data = other.path("blacklist").read_bytes()
    assert len(data) == pipe.store.path("blacklist").stat().st_size
    return data


def test_a_snapshot_copied_over_in_place_with_its_size_and_mtime_is_read_again(tmp_path, caplog, monkeypatch):
    """`cp -p backup.snap blacklist.snap` over the file: the same inode, the same size, the old mtime. Its ctime
    changed (no one can set it); and within one timestamp tick, where the ctime could not change either, the
    header (the generation's time and its sections' CRCs) differs: shown with the file's stat frozen."""
    pipe = _pipe(tmp_path)
    p = pipe.store.path("blacklist")
    st = os.stat(p)
    data = _same_size_generation(pipe, tmp_path)
    with open(p, "r+b") as f:                                    # in place: the same inode
        f.write(data)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(p)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    import engine.lists.snapshot as snapshot
    real = os.fstat
    monkeypatch.setattr(snapshot.os, "fstat", lambda fd: st if real(fd).st_ino == st.st_ino else real(fd))
    line = _reload(pipe, caplog)
    assert "; read again: blacklist;" in line, line
    assert pipe.lists.bl_domains == {"zzz.example"}


def test_a_snapshot_renamed_in_with_the_same_size_and_mtime_is_read_again(tmp_path, caplog):
    pipe = _pipe(tmp_path)
    p = pipe.store.path("blacklist")
    st = os.stat(p)
    tmp = p.with_name("blacklist.snap.new")
    tmp.write_bytes(_same_size_generation(pipe, tmp_path))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, p)
    line = _reload(pipe, caplog)
    assert "; read again: blacklist;" in line and pipe.lists.bl_domains == {"zzz.example"}


def _slow_load(monkeypatch):
    """ListStore.load held in the worker thread until `go` is set; `loading` is set when it has begun."""
    loading, go = threading.Event(), threading.Event()
    real = ListStore.load

    def held(self, *a, **k):
        loading.set()
        assert go.wait(10)
        return real(self, *a, **k)
    monkeypatch.setattr(ListStore, "load", held)
    return loading, go


@pytest.mark.parametrize("changed", ["blacklist", "dnc"])
def test_dnc_changes_made_in_the_process_during_and_after_a_reload_stay_in_force(tmp_path, monkeypatch, changed):
    """A 5656 DK DNC / HUY DNC and a `ctl lists` DNC edit live in the running process and its journal: made while a
    reload of another list (or of the DNC itself) is loading, and after it, none is lost or undone."""
    pipe = _pipe(tmp_path)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    if changed == "blacklist":
        pipe.store.add("blacklist", "bbb.example")
    else:
        pipe.store.import_csv("dnc", b"number,channel\n0912000009,S\n")
    loading, go = _slow_load(monkeypatch)

    async def main():
        t = asyncio.ensure_future(reload_lists(pipe))
        while not loading.is_set():
            await asyncio.sleep(0.005)
        pipe.judge(Message("0912000005", "5656", "DK DNC", T, "", "mo"))
        pipe.judge(Message("0912000001", "5656", "HUY DNC", T, "", "mo"))
        ans = await ctl.handle({"cmd": "lists", "op": "add", "kind": "dnc", "value": "0912000006", "channel": "SV"})
        assert ans["ok"], ans
        go.set()
        assert await t is None
        pipe.judge(Message("0912000007", "5656", "DK DNC", T, "", "mo"))
        ans = await ctl.handle({"cmd": "lists", "op": "remove", "kind": "dnc", "value": "0912000002", "channel": "SV"})
        assert ans["ok"] and ans["found"], ans
        pipe.store.import_csv("consent", b"owner,number\nOther,0912000008\n")
        assert await reload_lists(pipe) is None                  # another list again, after them
    asyncio.run(main())
    assert pipe.lists_reloads["last_read"] == ["consent"]
    L = pipe.lists
    for n in (84912000005, 84912000006, 84912000007):
        assert L.in_dnc(n, "S"), n
    for n in (84912000001, 84912000002):
        assert not L.in_dnc(n, "S"), n
    assert L.in_dnc(84912000004, "V") and L.in_dnc(84912000006, "V")
    assert L.in_dnc(84912000009, "S") == (changed == "dnc")
    monkeypatch.undo()
    full = ListStore(pipe.store.dir).load()                       # the files say the same
    assert (full.dnc_s, full.dnc_v) == (L.dnc_s, L.dnc_v)


def test_a_bad_file_in_the_changed_list_leaves_the_set_in_force(tmp_path, caplog):
    pipe = _pipe(tmp_path)
    before = pipe.lists
    want = (set(before.bl_domains), dict(before.senders))
    p = pipe.store.path("blacklist")
    p.write_bytes(b"TFSNAP1\n garbage")
    p.with_name(p.name + ".prev").unlink(missing_ok=True)
    with caplog.at_level("INFO"):
        err = asyncio.run(reload_lists(pipe))
    assert err is not None and "blacklist.snap" in err
    assert pipe.lists is before and (set(before.bl_domains), dict(before.senders)) == want
    assert pipe.lists_reloads["refused"] == 1


def test_a_list_read_from_its_previous_generation_is_read_again_at_every_reload(tmp_path, caplog):
    """A damaged snapshot with a good `.prev`: the reload takes the previous generation with a warning, as a full
    read does; that list is never kept as it is (it is said again, and read as soon as the file is mended)."""
    pipe = _pipe(tmp_path)
    pipe.store.add("blacklist", "bbb.example")          # (blacklist.snap.prev: the generation without it)
    p = pipe.store.path("blacklist")
    p.write_bytes(b"TFSNAP1\n garbage")
    line = _reload(pipe, caplog)
    assert "; read again: blacklist;" in line
    assert pipe.lists.bl_domains == {"aaa.example"}
    assert any("previous good snapshot" in r.getMessage() for r in caplog.records)
    line = _reload(pipe, caplog)
    assert "; read again: blacklist;" in line and any("previous good snapshot" in r.getMessage() for r in caplog.records)
    import shutil
    shutil.copyfile(p.with_name(p.name + ".prev"), p)   # the operator puts the previous generation back
    line = _reload(pipe, caplog)
    assert "; read again: blacklist;" in line and pipe.lists.bl_domains == {"aaa.example"}
    assert not any("previous good snapshot" in r.getMessage() for r in caplog.records)
    line = _reload(pipe, caplog)
    assert "; read again: none;" in line


def test_ctl_reload_lists_full_and_what_the_noc_sees(tmp_path):
    from engine.metrics import Metrics
    pipe = _pipe(tmp_path)
    m = Metrics(pipe)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    pipe.store.add("blacklist", "bbb.example")
    ans = asyncio.run(ctl.handle({"cmd": "reload", "what": ["lists"]}))
    assert ans["ok"] and ans["lists"]["read"] == ["blacklist"]
    assert ans["lists"]["kept"] == ["dnc", "senders", "consent", "mlexempt"]
    ans = asyncio.run(ctl.handle({"cmd": "reload", "what": ["lists"], "full": True}))
    assert ans["ok"] and ans["lists"]["kept"] == []
    assert ans["lists"]["read"] == ["dnc", "senders", "blacklist", "consent", "mlexempt"]
    ans = asyncio.run(ctl.handle({"cmd": "reload", "what": ["lists"], "full": "yes"}))
    assert not ans["ok"]
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in m.registry.collect() for s in fam.samples}
    assert got[("telfilter_lists_reload_lists_total", (("how", "read"), ("list", "blacklist")))] == 2
    assert got[("telfilter_lists_reload_lists_total", (("how", "kept"), ("list", "senders")))] == 1
    st = ctl.stats()["lists_reloads"]
    assert st["last_read"] == ["dnc", "senders", "blacklist", "consent", "mlexempt"] and st["last_kept"] == []


def test_ctl_reload_full_flag_on_the_command_line(tmp_path, monkeypatch, capsys):
    import engine.control_client as cc
    from engine.cli import parser
    sent = []
    monkeypatch.setattr(cc, "request_pool", lambda path, req, timeout: sent.append(req) or {"ok": True})
    for argv in (["ctl", "reload", "lists", "--full"], ["ctl", "reload", "lists"]):
        a = parser().parse_args(argv + ["--socket", str(tmp_path / "s")])
        assert cc.cmd_ctl(a) == 0
    assert sent == [{"cmd": "reload", "what": ["lists"], "full": True}, {"cmd": "reload", "what": ["lists"]}]
