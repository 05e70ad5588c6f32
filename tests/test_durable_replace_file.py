"""durable.replace_file (the files a stop writes whole: DNC changes a stop could not publish to the other nodes,
held receipts' and message ids' maps, the SIP calls in progress): the new file's data and then its directory entry
are durable before it returns. The rename was never fsynced: a power cut soon after a clean stop could bring back
the old file, or none (the DNC changes this node had not yet published, kept for the next start, were then in no
file: the other nodes never had them)."""
import os
import stat

from engine import durable


def test_the_rename_is_made_durable_by_an_fsync_of_the_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", "dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    def replace(a, b, *args, **kw):
        events.append(("replace", str(b)))
        real_replace(a, b, *args, **kw)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "lists" / "dnc-unpublished.1.abc.msgpack"
    durable.replace_file(target, b"payload")
    monkeypatch.undo()
    assert target.read_bytes() == b"payload"
    kinds = [e[:2] for e in events]
    assert kinds == [("fsync", "file"), ("replace", str(target)), ("fsync", "dir")], events
    assert events[2][2] == os.stat(target.parent).st_ino
    assert [p.name for p in target.parent.iterdir()] == [target.name]      # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "held.msgpack"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    try:
        durable.replace_file(target, b"new")
    except OSError:
        pass
    else:
        raise AssertionError("no error")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["held.msgpack"]
