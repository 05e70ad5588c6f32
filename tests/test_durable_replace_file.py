"""durable.replace_file (the files a stop writes whole: DNC changes a stop could not publish to the other nodes,
held receipts' and message ids' maps, the SIP calls in progress): the new file's data and then its directory entry
are durable before it returns. The rename was never fsynced: a power cut soon after a clean stop could bring back
the old file, or none (the DNC changes this node had not yet published, kept for the next start, were then in no
file: the other nodes never had them)."""
import os
import stat

from engine import durable


def _recorded(monkeypatch) -> list:
    """os.fsync (of a file or a directory, by inode) and os.replace, recorded in order as they run."""
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
    return events


def test_the_rename_is_made_durable_by_an_fsync_of_the_directory(tmp_path, monkeypatch):
    events = _recorded(monkeypatch)
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


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path):
    # rename_in opened `.NAME.PID.tmp` following links: a symbolic link planted there (by another local user, in a
    # directory they can write) had the data written into the file it names, truncated first
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    target = tmp_path / "held.msgpack"
    for tmp in (None, tmp_path / f".held.msgpack.tmp{os.getpid()}"):        # the default name, and one passed
        link = tmp or tmp_path / f".held.msgpack.{os.getpid()}.tmp"
        link.symlink_to(victim)
        durable.replace_file(target, b"new data", tmp)
        assert victim.read_bytes() == b"keep me" and target.read_bytes() == b"new data"
        assert not target.is_symlink() and not os.path.lexists(link)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["held.msgpack", "victim"]


def test_a_dead_writers_leftover_at_the_temporary_name_is_replaced_and_the_mode_kept(tmp_path):
    # the same pid after a restart (a container's) finds its own name taken by the file a kill -9 left: written over
    # as before, not refused; the mode is the umask's, as open(2) with 0666 gives
    target = tmp_path / "ids.msgpack"
    (tmp_path / f".ids.msgpack.{os.getpid()}.tmp").write_bytes(b"a dead writer's half")
    old = os.umask(0o027)
    try:
        durable.replace_file(target, b"ids")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"ids" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["ids.msgpack"]


def test_an_out_file_is_renamed_in_durably_as_replace_file_does(tmp_path, monkeypatch):
    # commands._Out (`check --out`, `lists export --out`) fsynced its file but not the directory after the rename:
    # a power cut soon after could bring back the earlier run's output, or none
    from engine.commands import _Out
    target = tmp_path / "out" / "verdicts.jsonl"
    events = _recorded(monkeypatch)
    with _Out(str(target)) as f:
        f.write("line\n")
    monkeypatch.undo()
    assert target.read_text() == "line\n"
    assert [e[:2] for e in events] == [("fsync", "file"), ("replace", str(target)), ("fsync", "dir")], events
    assert events[2][2] == os.stat(target.parent).st_ino
