"""serve's file watcher (list reloads, the DNC journal's catch-up and compaction, rule files, systemd's status line)
outlives an unexpected exception in one of its looks: it ended silently, and the lists and rules a CLI changed were
never picked up again while serve kept answering with the old ones."""
from __future__ import annotations

import signal
import subprocess
import sys

from engine.lists import ListStore

from .conftest import ROOT
from .test_serve import wait_for, wait_ready

# serve, with the watcher's look failing once (the 2nd call: the 1st is the watcher's start), said in a file
INJECT = """import sys
from pathlib import Path
import engine.lists.store as st
real, calls, mark = st.ListStore.journal_signature, [0], Path(sys.argv.pop(1))
def flaky(self):
    calls[0] += 1
    if calls[0] == 2:
        mark.write_text("raised")
        raise RuntimeError("injected: one look of the watcher failed")
    return real(self)
st.ListStore.journal_signature = flaky
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_file_watcher_logs_an_unexpected_error_and_keeps_watching(tmp_path):
    data, ready, mark, log = tmp_path / "d", tmp_path / "ready", tmp_path / "raised", tmp_path / "stderr.log"
    ListStore(data).import_csv("blacklist", b"kind,value\ndomain,aaa.example\n")
    with open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-c", INJECT, str(mark), "serve", "--data-dir", str(data),
                              "--smpp-listen", "127.0.0.1:0", "--smsc", "127.0.0.1:24999", "--sip-listen", "off", "--control-socket", "off",
                              "--ready-file", str(ready)], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        wait_ready(p, ready, log)
        assert wait_for(lambda: mark.exists() or p.poll() is not None, 30) and mark.exists()
        ListStore(data).add("blacklist", "bbb.example")         # a CLI change after the failed look
        picked = wait_for(lambda: "lists reloaded" in log.read_text() or p.poll() is not None, 30)
        said = log.read_text()
        assert picked and "lists reloaded" in said, said[-3000:]
        assert "file watcher" in said and "Traceback" in said and "RuntimeError: injected" in said, said[-3000:]
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    assert p.returncode == 0, log.read_text()[-3000:]


def test_the_watchers_errors_are_counted_and_their_tracebacks_said_once_a_minute(tmp_path, caplog):
    """A look that keeps failing (a list file serve may not stat) is one traceback a minute, every failure counted
    (/metrics telfilter_file_watcher_errors); its first look failing too does not make it spin."""
    import asyncio
    import logging

    from prometheus_client import generate_latest

    from engine.app import build
    from engine.metrics import Metrics
    from engine.serve_watch import watch_files

    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    looks = []

    def broken(*_):
        looks.append(1)
        raise PermissionError(13, "Permission denied")
    pipe.store.snapshot_signature = broken

    class Quiet:
        active = False

    class Rules:
        def changed(self):
            return False

    async def main():
        t = asyncio.ensure_future(watch_files(pipe, Rules(), Quiet(), str, every=0.001))
        while pipe.watcher_errors < 20:
            await asyncio.sleep(0.001)
            assert len(looks) < 1000, "the watcher spun"
        t.cancel()
        await asyncio.wait({t})
    with caplog.at_level(logging.ERROR, "telfilter"):
        asyncio.run(main())
    said = [r for r in caplog.records if r.getMessage().startswith("file watcher")]
    assert len(said) == 1 and said[0].exc_info and pipe.watcher_errors >= 20, [r.getMessage() for r in said]
    text = generate_latest(Metrics(pipe).registry).decode()
    assert f"telfilter_file_watcher_errors_total {float(pipe.watcher_errors)}" in text
