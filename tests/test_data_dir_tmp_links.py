"""The data dir's other whole-file writers (list snapshots, the state snapshot, the reports' start-up checkpoint)
create their temporary file as durable.rename_in does: O_EXCL|O_NOFOLLOW (`durable.create_new`). They opened a
predictable name (`NAME.tmpPID`, `NAME.tmp.PID.w`, `NAME.PID.tmp`) following links: a symbolic link planted there
by another user who can write the directory had the data written into (and first truncated) the file it names."""
import os

from engine.lists import snapshot
from engine.lists.reports import ReportStore
from engine.state import journal


def _plant(link, victim):
    victim.write_bytes(b"keep me")
    link.symlink_to(victim)


def test_a_list_snapshot_is_not_written_through_a_link_at_its_temporary_name(tmp_path):
    path, victim = tmp_path / "dnc.snap", tmp_path / "victim"
    _plant(tmp_path / f"dnc.snap.tmp{os.getpid()}", victim)
    snapshot.write_snapshot(path, "dnc", {"a": b"12345"})
    assert victim.read_bytes() == b"keep me"
    assert snapshot.read_snapshot(path, "dnc")[0] == {"a": b"12345"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dnc.snap", "victim"]


def test_the_state_snapshot_is_not_written_through_a_link_at_its_temporary_name(tmp_path):
    path, victim = tmp_path / "state.snap", tmp_path / "victim"
    _plant(journal.snapshot_tmp(path), victim)
    journal.write_snapshot(path, {"k": [1, 2, 3]})
    assert victim.read_bytes() == b"keep me"
    assert journal.read_snapshot(path) == {"k": [1, 2, 3]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap", "victim"]


def test_the_reports_checkpoint_is_not_written_through_a_link_at_its_temporary_name(tmp_path):
    store, victim = ReportStore(tmp_path), tmp_path / "victim"
    store.path.write_bytes(b'{"kind": "S"}\n' * 40)
    _plant(tmp_path / f"reports.jsonl.start.{os.getpid()}.tmp", victim)
    with open(store.path, "rb") as f:
        store._save_checkpoint(f, 28, 1234.0)
        assert store._checkpoint(f) == (28, 1234.0)
    assert victim.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports.jsonl", "reports.jsonl.start", "victim"]
