"""`reports export` names every labelled report it leaves out. A 5656 `S 0912345678` (a number, no content) is
stored with an empty text; labelled spam, it left the export without a word (`"rows": 2, "spam": 2` after
labelling three S reports spam), as a text labelled both ways never did."""
import json

from .test_analyst import PRIZE, _cli, _store


def test_a_labelled_report_without_text_is_named_and_counted(tmp_path):
    _store(tmp_path, [PRIZE, "", "   "])
    from engine.analyst.store import Workspace
    ids = [r.id for r in Workspace(tmp_path).reports]
    assert _cli("reports", "label", "spam", *ids, "--data-dir", tmp_path).returncode == 0
    r = _cli("reports", "export", "--out", tmp_path / "out.tsv", "--data-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["rows"], out["spam"], out["no_text"]) == (1, 1, 2)
    assert [line.rsplit(": ", 1)[1] for line in r.stderr.splitlines()] == [f"{ids[1]} (spam)", f"{ids[2]} (spam)"]
    assert all("left out, no text to train on" in line for line in r.stderr.splitlines())


def test_ml_train_on_the_store_counts_the_labelled_reports_without_text(tmp_path):
    """`ml train --data reports.jsonl` reads the store as `reports export` does, but the labelled reports without
    text it left out were in no count (stderr or the card's training_data), where export names each."""
    from engine.ml.data import read_dataset
    _store(tmp_path, [PRIZE, "", "   ", "Anh oi toi nay an com o nha nhe"])
    from engine.analyst.store import Workspace
    ids = [r.id for r in Workspace(tmp_path).reports]
    assert _cli("reports", "label", "spam", *ids[:3], "--data-dir", tmp_path).returncode == 0
    ds = read_dataset(tmp_path / "reports.jsonl")
    assert ds.texts == [PRIZE] and ds.info["no_text_skipped"] == 2 and ds.info["unlabelled_skipped"] == 1
    assert any("2 labelled reports skipped for having no text" in n for n in ds.notes)
