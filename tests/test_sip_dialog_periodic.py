"""The answered-call memory saved while the screen runs (engine/sip_screen/dialogsave.py), not only at a clean stop.

Before, DATA_DIR/sip/dialogs.msgpack was written at a clean stop only: after a crash (kill -9, the OOM killer) every
call answered since the last clean stop was a stranger to the next process -- an advertiser's session refresh
refused 608 by its own count, the call torn down; its BYE recorded no call. Here, with the screen's fake socket:
a periodic save (a forked child) writes the memory when it changed, and only then (an idle screen writes nothing);
what it wrote is read back by a new screen as the stop's file is; a save that fails is said once and the screen
serves on. tests/test_sipp_dialog_restart.py does it through `serve` killed with SIGKILL."""
import asyncio
import logging

import pytest

from engine.sip_screen.dialogsave import DialogSaver
from engine.sip_screen.dialogstore import restore_dialogs

from .sip_helpers import UAC, ad_pipe, invite, sent
from .test_sip_dialog_restart import answered_call, ended, in_dialog, screen


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path / "data")


async def _written(path, seconds: float) -> None:
    """Until `path` exists, at most `seconds` (the assertions after say whether it came)."""
    for _ in range(round(seconds * 10)):
        await asyncio.sleep(0.1)
        if path.exists():
            return


def stat(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_a_changed_memory_is_saved_while_serving_and_read_back_after_a_crash(pipe, tmp_path):
    now, ticks = [0.0], [1000.0]
    scr, _ = screen(pipe, now, ticks)
    path = tmp_path / "data" / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    assert not asyncio.run(saver.save_if_changed()) and not path.exists()     # nothing answered: nothing written
    answered_call(scr)
    now[0], ticks[0] = 10.0, 1010.0
    assert asyncio.run(saver.save_if_changed()) and path.exists()
    assert not list(path.parent.glob(".*.tmp"))
    # the process is killed here: no stop, no stop's save. The next one reads what the periodic save wrote
    now[0], ticks[0] = 15.0, 3.0
    new, vlog2 = screen(pipe, now, ticks)
    assert restore_dialogs(new, path) == 1
    new.on_datagram(in_dialog("INVITE", 2), UAC)        # the refresh: in the dialog, unjudged (no 608 by its count)
    ((fwd, _),) = sent(new)
    assert fwd.method == "INVITE" and new.stats["screened"] == 0 and vlog2.calls == []
    now[0], ticks[0] = 20.0, 8.0
    new.on_datagram(in_dialog("BYE", 3, branch="b"), UAC)
    sent(new)
    assert [d for _, d in ended(pipe)] == [20.0]        # the whole call, the time down included


def test_an_unchanged_memory_is_not_written_again(pipe, tmp_path, monkeypatch):
    scr, _ = screen(pipe, [0.0], [10.0])
    path = tmp_path / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    answered_call(scr)
    assert asyncio.run(saver.save_if_changed())
    before, saves = stat(path), saver.saves
    for _ in range(3):
        assert not asyncio.run(saver.save_if_changed())
    assert stat(path) == before and saver.saves == saves
    scr.on_datagram(in_dialog("INVITE", 2), UAC)        # a refresh reads the memory, changes nothing
    sent(scr)
    assert not asyncio.run(saver.save_if_changed()) and saver.saves == saves
    # a restored memory is the file: nothing to write until it changes
    new, _ = screen(pipe, [1.0], [2.0])
    assert restore_dialogs(new, path) == 1
    assert not asyncio.run(DialogSaver(new, path).save_if_changed()) and stat(path) == before
    # the call's BYE changes it: written (the memory empty: the file removed, as the stop's save does) -- once its
    # INVITE, judged, is no longer within Timer B's 32 s (its retransmissions are carried in the file until then:
    # judgedstore.py)
    scr.on_datagram(in_dialog("BYE", 3, branch="b"), UAC)
    sent(scr)
    import time
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 33.0)
    assert asyncio.run(saver.save_if_changed()) and not path.exists()


def test_a_save_that_fails_is_said_once_and_the_screen_serves(pipe, tmp_path, caplog):
    scr, vlog = screen(pipe, [0.0], [10.0])
    (tmp_path / "f").write_text("a file where the directory should be")    # (read-only alike: root writes anyway)
    path = tmp_path / "f" / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    with caplog.at_level(logging.INFO, logger="telfilter.sip"):
        for i in range(4):
            scr.on_datagram(invite(caller=f"09012{i:05d}", call_id=f"c-{i}"), UAC)     # judged and let through
            ((fwd, _),) = sent(scr)
            assert fwd.method == "INVITE"
            assert not asyncio.run(saver.save_if_changed())
    said = [r for r in caplog.records if "could not be saved" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.ERROR and str(path) in said[0].getMessage()
    assert len(vlog.calls) == 4 and len(scr.answered) == 4
    caplog.clear()
    (tmp_path / "f").unlink()                           # the disk is fixed: the next save works, and says so
    with caplog.at_level(logging.INFO, logger="telfilter.sip"):
        assert asyncio.run(saver.save_if_changed()) and path.exists()
    assert [r.levelno for r in caplog.records if "saved to" in r.getMessage() and "again" in r.getMessage()] \
        == [logging.WARNING]


def test_a_stop_during_a_save_stops_it_and_its_own_file_stays(pipe, tmp_path, monkeypatch):
    """One writer: a periodic save under way at the stop is stopped (its child killed and reaped, its temporary file
    removed) before the stop's own save, so no older memory can be renamed over the stop's file afterwards."""
    import os
    import time

    from engine.sip_screen import dialogsave
    from engine.sip_screen.dialogstore import save_at_stop

    def slow(screen, path, ticks, wall):         # in the child: a save that takes its time (a slow disk)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"half")
        time.sleep(3)
        os.replace(tmp, path)
    monkeypatch.setattr(dialogsave, "_write", slow)
    scr, _ = screen(pipe, [0.0], [10.0])
    path = tmp_path / "sip" / "dialogs.msgpack"
    scr.dialogs_file = path
    saver = DialogSaver(scr, path)              # (as SipScreen.begin makes it: the memory as the file holds it)
    answered_call(scr)

    async def run():
        task = asyncio.ensure_future(saver.save_if_changed())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if list(path.parent.glob(".*.tmp")):
                break
        child = saver.child
        assert child is not None
        await saver.close()                     # what SipScreen.stop does before its own save
        assert await task is False               # abandoned: not counted as saved, nothing said
        return child
    child = asyncio.run(run())
    try:
        os.kill(child.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive and not list(path.parent.glob(".*.tmp")) and not path.exists()
    save_at_stop(scr)
    data = path.read_bytes()
    time.sleep(3.5)                              # the killed child would have renamed its file by now
    assert path.read_bytes() == data and data != b"half"


def test_the_interval_is_a_setting_checked_at_its_line(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    assert load_sip_settings(tmp_path).dialog_save_interval == 30.0         # the default: no sip.toml
    for value, ok in (("0", True), ("0.5", True), ("30", True), ("0.1", False), ("-1", False)):
        (tmp_path / "sip.toml").write_text(f"[sip]\ndialog_save_interval = {value}\n")
        if ok:
            assert load_sip_settings(tmp_path).dialog_save_interval == float(value)
        else:
            with pytest.raises(ValueError, match=r"sip.toml:2:1: \[sip\] dialog_save_interval must be 0 \(off\)"):
                load_sip_settings(tmp_path)


def test_a_start_removes_the_temporary_file_of_a_save_killed_with_a_crashed_serve(tmp_path):
    from engine.sip_screen.dialogsave import remove_stale_tmp_files
    path = tmp_path / "sip" / "dialogs.msgpack"
    path.parent.mkdir()
    path.write_bytes(b"the last whole save")
    (path.parent / ".dialogs.msgpack.4242.tmp").write_bytes(b"half")
    (path.parent / "other").write_bytes(b"not ours")
    remove_stale_tmp_files(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["dialogs.msgpack", "other"]


@pytest.mark.parametrize("before", [3600.0, 0.0], ids=["shortened", "turned-on"])
def test_a_reload_that_shortens_the_interval_is_in_force_within_a_second(pipe, tmp_path, before):
    """`ctl reload sip` swaps the settings object; the saver slept the interval read before it whole (an hour's
    interval shortened to 0.5 s: the next save an hour later; found by review50)."""
    from dataclasses import replace
    scr, _ = screen(pipe, [0.0], [10.0])
    scr.s = replace(scr.s, dialog_save_interval=before)
    path = tmp_path / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    answered_call(scr)

    async def run():
        saver.start()
        await asyncio.sleep(0.3)
        assert not path.exists()
        scr.s = replace(scr.s, dialog_save_interval=0.5)        # what live_settings.apply_sip_settings does
        await _written(path, 3.0)
        await saver.close()
    asyncio.run(run())
    assert path.exists() and saver.saves == 1


def test_a_save_whose_child_is_killed_leaves_no_temporary_file(pipe, tmp_path, monkeypatch):
    """A writer killed part-way (the OOM killer picks it: its copy-on-write pages; or the wait limit) never reaches
    its own clean-up: its temporary file stayed until the next start, one more each interval it happened again --
    10.8 MB each for a full memory, a disk filled on a host short of memory (found by review50)."""
    import os
    import signal

    from engine.sip_screen import dialogsave

    def killed(screen, path, ticks, wall):      # in the child: half a file written, then SIGKILL
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f".{path.name}.{os.getpid()}.tmp").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    monkeypatch.setattr(dialogsave, "_write", killed)
    scr, _ = screen(pipe, [0.0], [10.0])
    path = tmp_path / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    for i in range(3):
        scr.on_datagram(invite(caller=f"09013{i:05d}", call_id=f"k-{i}"), UAC)     # a change each round
        sent(scr)
        assert not asyncio.run(saver.save_if_changed())
    assert saver.failing and not path.exists() and list(path.parent.iterdir()) == []


def test_a_save_waits_while_the_state_snapshots_writer_runs(pipe, tmp_path):
    """A save due while another forked writer of the process runs (the state store's snapshot, forksnap.py) waits
    for it: two children copying the pages the parent writes, and two fork pauses back to back, were possible."""
    from dataclasses import replace
    from engine.state import forksnap
    scr, _ = screen(pipe, [0.0], [10.0])
    scr.s = replace(scr.s, dialog_save_interval=0.5)
    path = tmp_path / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    answered_call(scr)
    snap = forksnap.start(lambda: __import__("time").sleep(1.6), what="a stand-in state snapshot writer")
    assert forksnap.running()

    async def run():
        waiting = asyncio.get_running_loop().run_in_executor(None, snap.wait)
        saver.start()
        await asyncio.sleep(1.2)
        assert not path.exists() and saver.saves == 0       # due at 0.5 s, the other writer still running
        await waiting
        assert not forksnap.running()
        await _written(path, 4.0)
        await saver.close()
    asyncio.run(run())
    assert path.exists() and saver.saves == 1
