"""The analysts' files survive a power cut whole: `labels.jsonl` created by a first label, and an export renamed into
place, have their directory fsynced (the labels themselves and the export's bytes were fsynced, but a new name, or a
rename, is durable only once its directory is: a power cut could take the label log with its labels, or bring back
the old export). Found by the analyst-loop walkthrough (stop 61)."""
from engine import durable
from engine.analyst.export import write_atomic
from engine.analyst.store import LabelLog


def _recording(monkeypatch):
    synced = []
    real = durable.fsync_dir
    monkeypatch.setattr(durable, "fsync_dir", lambda d: (synced.append(d), real(d)))
    return synced


def test_a_first_label_makes_the_label_logs_name_durable(tmp_path, monkeypatch):
    synced = _recording(monkeypatch)
    log = LabelLog(tmp_path / "store")
    assert log.append(["r1"], "spam") == 1
    assert synced == [tmp_path / "store"]
    assert log.append(["r2"], "ham") == 1      # appended to a log that exists: its name is durable already
    assert synced == [tmp_path / "store"]


def test_an_export_renamed_into_place_has_its_directory_fsynced(tmp_path, monkeypatch):
    synced = _recording(monkeypatch)
    out = tmp_path / "out" / "labelled.tsv"
    write_atomic(out, "label\ttext\nspam\tWin\n")
    assert out.read_text() == "label\ttext\nspam\tWin\n"
    assert synced == [out.parent]
