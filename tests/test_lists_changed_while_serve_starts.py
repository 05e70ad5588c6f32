"""A CLI list change made while serve starts: serve reads the lists first thing (app.build) and starts its file
watcher once it listens, seconds later (the state, the --state server's catch-ups, the listeners); the watcher took
the list files as they were then for the ones read. A snapshot a `telfilter lists import/add` installed in between
was never picked up (until the next change), and a SIGHUP sent for it came while serve still ignored the signal.
The watcher now starts from the files the start read."""
import asyncio
import time
from types import SimpleNamespace

from engine.app import build
from engine.lists import ListStore
from engine.serve_watch import watch_files


def test_a_list_snapshot_installed_while_serve_starts_is_picked_up(tmp_path):
    data = tmp_path / "data"
    ListStore(data).import_csv("blacklist", b"kind,value\ndomain,aaa.example\n")
    pipe = build(data_dir=data, seed=False, with_model=False)
    assert "aaa.example" in pipe.lists.bl_domains
    ListStore(data).add("blacklist", "bbb.example")         # the CLI, after serve's read, before its watcher

    async def main():
        idle = SimpleNamespace(active=False)                # (no systemd; the rule files unchanged)
        w = asyncio.ensure_future(watch_files(pipe, SimpleNamespace(changed=lambda: False), idle, lambda: "",
                                              every=0.01))
        end = time.monotonic() + 10
        while "bbb.example" not in pipe.lists.bl_domains and time.monotonic() < end:
            await asyncio.sleep(0.01)
        w.cancel()
        await asyncio.gather(w, return_exceptions=True)
    asyncio.run(main())
    assert "bbb.example" in pipe.lists.bl_domains


def test_a_snapshot_a_reload_has_read_is_not_read_again_by_the_watcher(tmp_path):
    """Found by the ops walkthrough: every `ctl lists add blacklist …` (serve installs the snapshot, then reloads)
    and every SIGHUP or `ctl reload lists` after a CLI change was followed a second later by the watcher's own
    reload of the same files ('read again: none'): two service-log lines and telfilter_lists_reloads_total +2 for
    one change. A snapshot changed since a reload read is still picked up."""
    from engine.serve_reload import reload_lists
    from engine.serve_watch import _look
    data = tmp_path / "data"
    ListStore(data).import_csv("blacklist", b"kind,value\ndomain,aaa.example\n")
    pipe = build(data_dir=data, seed=False, with_model=False)
    seen = list(pipe.lists_stamp)                           # the watcher's start
    idle, rules_same = SimpleNamespace(active=False), SimpleNamespace(changed=lambda: False)

    async def main():
        ListStore(data).add("blacklist", "bbb.example")     # the CLI, then its SIGHUP (or ctl reload lists)
        assert await reload_lists(pipe) is None
        assert pipe.lists_reloads["ok"] == 1
        await _look(pipe, rules_same, idle, lambda: "", 1, seen)
        assert pipe.lists_reloads["ok"] == 1                # not read again
        ListStore(data).add("blacklist", "ccc.example")     # a later change: picked up by the watcher
        await _look(pipe, rules_same, idle, lambda: "", 2, seen)
        assert pipe.lists_reloads["ok"] == 2 and "ccc.example" in pipe.lists.bl_domains
    asyncio.run(main())
