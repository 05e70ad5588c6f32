"""What a lists reload in a running serve costs the event loop after it is over (small lists here; the figures at
10M DNC, 200k registry rows and 1M blacklist entries are in the README's Known limits)."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.serve import reload_lists


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()           # (what a reload froze goes back to the collector: the test process runs on)


def _pipe(tmp_path):
    d = tmp_path / "d"
    store = ListStore(d)
    rows = "".join(f"BR{i},Owner {i},QC,,,\n" for i in range(50))
    store.import_csv("senders", ("sender,owner,category,valid_from,valid_to,accounts\n" + rows).encode())
    return build(None, d, with_model=False, seed=False)


def test_reloaded_lists_are_kept_out_of_the_collectors_generations(tmp_path):
    """serve freezes what it loaded at start (gc.freeze) so full collections do not walk it; lists loaded by a
    reload were left in the generations, and every full collection from then on walked them (200k registry rows:
    ~125 ms a collection, on the loop, for the rest of the process's life). A reload now freezes them too."""
    pipe = _pipe(tmp_path)
    assert asyncio.run(reload_lists(pipe)) is None
    entry = next(iter(pipe.lists.senders.values()))[0]
    tracked = {id(o) for o in gc.get_objects()}          # the three generations, not the frozen objects
    assert id(entry) not in tracked
    assert id(pipe.lists.senders) not in tracked


class _Cycle:
    pass


def _cycles(n, refs):
    for _ in range(n):
        c = _Cycle()
        c.me = c                            # a reference cycle: only the cyclic collector frees it
        refs.append(weakref.ref(c))


def test_a_reload_freezes_no_garbage(tmp_path, monkeypatch):
    """gc.freeze() freezes every object the generations hold, garbage too: the reference cycles the loop had let go
    before a reload, and those it let go while the load ran (collector off), were frozen with the lists and never
    freed (a closed session's, a finished task's), at every reload. The garbage is collected before the freeze now,
    and the loaded lists are still frozen."""
    pipe = _pipe(tmp_path)
    before, during = [], []
    gc.disable()                            # (garbage the collector has not reached yet when the reload comes)
    try:
        _cycles(200, before)
    finally:
        gc.enable()
    real = ListStore.load

    def load(self, *a, **k):
        _cycles(2000, during)               # the loop's garbage while the worker thread loads
        return real(self, *a, **k)
    monkeypatch.setattr(ListStore, "load", load)
    assert asyncio.run(reload_lists(pipe)) is None
    gc.collect()
    assert sum(r() is not None for r in before) == 0
    assert sum(r() is not None for r in during) == 0
    entry = next(iter(pipe.lists.senders.values()))[0]
    assert id(entry) not in {id(o) for o in gc.get_objects()}
    assert gc.get_threshold()[2] < 1 << 30          # the collector's settings as they were


def test_a_reload_leaves_the_collector_as_it_found_it(tmp_path):
    """The load runs with automatic collection off (a full one mid-load held the GIL 170-310 ms); on again after it,
    also when the load fails."""
    pipe = _pipe(tmp_path)
    assert gc.isenabled()
    assert asyncio.run(reload_lists(pipe)) is None
    assert gc.isenabled()
    (pipe.store.dir / "lists" / "senders.snap").write_bytes(b"garbage")
    (pipe.store.dir / "lists" / "senders.snap.prev").unlink(missing_ok=True)
    assert asyncio.run(reload_lists(pipe)) is not None       # refused: the old lists stay
    assert gc.isenabled()


def test_the_noc_sees_lists_reloads_and_what_they_took(tmp_path, caplog):
    """A lists reload of 10M DNC numbers and 200k registry rows takes seconds of a worker thread and slows the loop
    meanwhile; it was said by a bare "lists reloaded" and nowhere else. Now the log line has the time and the sizes,
    /metrics counts reloads by result with the last one's seconds, and `ctl stats` has both."""
    from engine.control import ControlServer
    from engine.metrics import Metrics
    pipe = _pipe(tmp_path)
    m = Metrics(pipe)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    with caplog.at_level("INFO"):
        assert asyncio.run(reload_lists(pipe)) is None
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lists reloaded")]
    assert said and " s: DNC S 0 V 0, senders 50," in said[0], said
    (pipe.store.dir / "lists" / "senders.snap").write_bytes(b"garbage")
    (pipe.store.dir / "lists" / "senders.snap.prev").unlink(missing_ok=True)
    assert asyncio.run(reload_lists(pipe)) is not None
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in m.registry.collect() for s in fam.samples}
    assert got[("telfilter_lists_reloads_total", (("result", "ok"),))] == 1
    assert got[("telfilter_lists_reloads_total", (("result", "refused"),))] == 1
    assert got[("telfilter_lists_reload_seconds", ())] >= 0
    st = ctl.stats()["lists_reloads"]
    assert st["ok"] == 1 and st["refused"] == 1 and st["last_result"] == "refused" and st["last_seconds"] >= 0


class _Noted(dict):
    """A registry dict that notes which thread freed it."""
    freed_in: list = []

    def __del__(self):
        import threading
        self.freed_in.append(threading.current_thread() is threading.main_thread())


def test_the_replaced_lists_are_freed_off_the_loop(tmp_path):
    """The last reference to the replaced lists was dropped on the loop: 200k registry rows and 1M blacklist entries
    freed in one C call, 57-100 ms of the loop. They are freed in a worker thread now, in slices; lists something
    else still holds are left to it."""
    pipe = _pipe(tmp_path)
    pipe.lists.senders = _Noted(pipe.lists.senders)
    _Noted.freed_in = []
    one_more = "sender,owner,category,valid_from,valid_to,accounts\nBR{},Owner,QC,,,\n"
    pipe.store.import_csv("senders", one_more.format(99).encode())  # (a reload replaces only a list that changed)
    assert asyncio.run(reload_lists(pipe)) is None
    assert _Noted.freed_in == [False]                       # freed, not on the loop's thread
    held = pipe.lists
    before = dict(held.senders)
    pipe.store.import_csv("senders", one_more.format(98).encode())
    assert asyncio.run(reload_lists(pipe)) is None
    assert held.senders == before and held is not pipe.lists   # still readable by whoever holds them


def test_a_loaded_registry_shares_what_its_rows_repeat(tmp_path):
    """Each registry row kept its own copy of its owner, category, dates and accounts set: 200k rows held 119 MB (and
    a reload holds two registries at once). Equal values are one object now (48 MB)."""
    store = ListStore(tmp_path / "d")
    rows = "".join(f"BR{i},Owner {i % 3},QC,2026-01-01,2026-12-31,acct1 acct2\n" for i in range(30))
    store.import_csv("senders", ("sender,owner,category,valid_from,valid_to,accounts\n" + rows).encode())
    es = [e for v in store.load().senders.values() for e in v]
    assert len(es) == 30
    for f in ("owner", "category", "valid_from", "valid_to", "accounts"):
        assert len({id(getattr(e, f)) for e in es}) == len({getattr(e, f) for e in es}), f


def test_registry_and_domains_are_unpacked_an_item_at_a_time(tmp_path, monkeypatch):
    """msgpack.unpackb of 200k registry rows is one C call that held the GIL 94-233 ms: the loop's longest stall in a
    reload (the load runs in a worker thread, which only helps between calls). The rows and the blacklist's domains
    are read an item at a time now; what a damaged section gives is still a refused snapshot."""
    import msgpack
    from engine.lists import SnapshotError
    d = tmp_path / "d"
    store = ListStore(d)
    store.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nBR1,Owner,QC,,,\nBR2,Owner,CSKH,,,\n")
    store.import_csv("blacklist", b"kind,value\ndomain,spam.example\nnumber,0912345678\n")
    whole = msgpack.unpackb

    def refuse_arrays(b, *a, **k):
        v = whole(b, *a, **k)
        assert not isinstance(v, list) or len(v) < 2, "a list section unpacked in one call"
        return v
    monkeypatch.setattr(msgpack, "unpackb", refuse_arrays)
    L = store.load()
    assert len(L.senders) == 2 and L.bl_domains == {"spam.example"}
    monkeypatch.setattr(msgpack, "unpackb", whole)
    from engine.lists.snapshot import read_snapshot, write_snapshot
    secs, extra = read_snapshot(store.path("senders"), "senders")
    write_snapshot(store.path("senders"), "senders", {"rows": secs["rows"] + b"\x01"}, extra)
    try:
        ListStore(d).load(strict=True)
    except SnapshotError as e:
        assert "bad section contents" in str(e)
    else:
        raise AssertionError("a rows section with trailing bytes was taken")


def _store_noting_reads(tmp_path, monkeypatch):
    """A data dir with a registry row and a DNC journal line, and `read`: the list kinds each load reads from now on
    (ListStore._load_kind noted; `real` to put back)."""
    d = tmp_path / "d"
    store = ListStore(d)
    store.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nBR1,Owner,QC,,,\n")
    store.append_delta("add", 84912345678, "S")
    read = []
    real = ListStore._load_kind

    def noted(self, kind, L, strict):
        read.append(kind)
        return real(self, kind, L, strict)
    monkeypatch.setattr(ListStore, "_load_kind", noted)
    return d, read, real


def test_a_journal_compaction_reads_the_dnc_alone(tmp_path, monkeypatch):
    """serve folds a DNC journal over 4 MiB into the snapshot in a worker thread; the fold read every list first (1.7 s
    of the GIL at 200k registry rows and 1M blacklist entries) to write the DNC's. It reads the DNC alone now, and the
    other lists are left as they were."""
    d, read, real = _store_noting_reads(tmp_path, monkeypatch)
    assert ListStore(d).compact_journal(min_bytes=0)
    assert read == ["dnc"]
    monkeypatch.setattr(ListStore, "_load_kind", real)
    L = ListStore(d).load()
    assert 84912345678 in L.dnc_s and len(L.senders) == 1


def test_an_edit_reads_the_list_it_changes_alone(tmp_path, monkeypatch):
    """`lists add blacklist x` (and `ctl lists add`, an import) read every list before writing the one it changes:
    ~2 s of a 200k-row registry beside a live serve for one domain. It reads that list (and the DNC journal) now;
    the others are left as they were."""
    d, read, real = _store_noting_reads(tmp_path, monkeypatch)
    ListStore(d).add("blacklist", "spam.example")
    assert read == ["blacklist"]
    monkeypatch.setattr(ListStore, "_load_kind", real)
    L = ListStore(d).load()
    assert L.bl_domains == {"spam.example"} and len(L.senders) == 1 and 84912345678 in L.dnc_s


def test_ctl_stats_reads_the_lists_figures_off_the_loop(tmp_path, monkeypatch):
    """`ctl stats` computed the lists' figures on the loop: a union and an intersection of the DNC bitmaps and walks of
    the registry, 46-62 ms at 10M numbers and 200k rows, each time a NOC polled it. A worker thread reads them now."""
    import threading
    from engine.control import ControlServer
    from engine.lists import Lists
    pipe = _pipe(tmp_path)
    ctl = ControlServer(pipe, tmp_path / "ctl.sock", on_drain=lambda: None)
    on_loop = []
    real = Lists.stats

    def noted(self, *args, **kwargs):
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Lists, "stats", noted)
    ans = asyncio.run(ctl.handle({"cmd": "stats"}))
    assert ans["ok"] and ans["lists"]["senders"]["entries"] == 50
    assert on_loop == [False]


def test_lists_reloads_run_one_at_a_time(tmp_path, monkeypatch):
    """A SIGHUP, a `ctl reload lists` and a CLI change picked up together loaded side by side: each set in memory at
    once beside the one in force, and the one that finished last swapped in even if it had read the older files."""
    import threading
    import time
    pipe = _pipe(tmp_path)
    real = ListStore.load
    now = [0, 0]
    guard = threading.Lock()

    def slow(self, *a, **k):
        with guard:
            now[0] += 1
            now[1] = max(now)
        time.sleep(0.05)
        try:
            return real(self, *a, **k)
        finally:
            with guard:
                now[0] -= 1
    monkeypatch.setattr(ListStore, "load", slow)

    async def three():
        return await asyncio.gather(*(reload_lists(pipe) for _ in range(3)))
    assert asyncio.run(three()) == [None, None, None]
    assert now[1] == 1


def test_the_poller_sees_a_snapshot_rewritten_with_its_size_and_mtime(tmp_path):
    """serve picks up CLI changes by the snapshots' signature, once a second: inode, mtime and size missed a file
    written over in place with the same size and its mtime put back (`cp -p` of another generation, a restore): the
    lists in force stayed the old ones until something else changed. The ctime, which no one can set, is in it now."""
    import os
    import time
    d = tmp_path / "d"
    store, other = ListStore(d), ListStore(tmp_path / "other")
    store.import_csv("blacklist", b"kind,value\ndomain,aaa.example\n")
    other.import_csv("blacklist", b"kind,value\ndomain,zzz.example\n")
    p, data = store.path("blacklist"), other.path("blacklist").read_bytes()
    assert len(data) == p.stat().st_size
    sig, st = store.snapshot_signature(), os.stat(p)
    time.sleep(0.01)
    with open(p, "r+b") as f:
        f.write(data)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert store.snapshot_signature() != sig
