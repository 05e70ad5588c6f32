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
