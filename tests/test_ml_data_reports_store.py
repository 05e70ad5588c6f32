"""`ml train/eval --data`: the report store is read with the analysts' labels (labels.jsonl beside it, as
`reports export` reads them) and what is left out is counted and said; a `check` corpus's call records are
skipped and counted, any other record without `text` is a bad line that says so."""
import json
import subprocess
import sys

from engine.analyst.export import labelled_rows
from engine.analyst.store import Workspace
from engine.ml.data import DataError, read_all, read_dataset

from .conftest import CONFIG, ROOT

SPAM = ["Ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/abc truoc 12h",
        "Vay tien nhanh khong can the chap, giai ngan trong 30 phut, lai suat 0% thang dau, goi 0901234567",
        "Tai khoan ngan hang cua quy khach bi khoa, xac thuc ngay tai vcb-secure.com de tranh mat tien",
        "Nha cai uy tin so 1, nap lan dau tang 200%, dang ky ngay tai bong88.example",
        "Tuyen cong tac vien ban hang online, thu nhap 500k moi ngay, lien he zalo 0988777666",
        "WINNER!! You have won a 1000 cash prize. Call 09061701461 to claim"]
HAM = ["Anh oi toi nay an com o nha nhe, em nau canh chua", "Con da den truong roi, chieu me don con luc 5h nhe",
       "Hop nhom luc 9h sang mai o phong 302, nho mang laptop", "Chuc mung sinh nhat ban than, cuoi tuan di cafe nhe",
       "Em gui anh file bao cao quy 3, anh xem giup em nhe", "Bo oi con het tien dien thoai, bo nap giup con 50k"]


def _store(d, texts, kind="S"):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "reports.jsonl", "a") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"reporter": f"8491200{i:04d}", "reported": "84987654321", "content": t,
                                "time": "2026-11-30T10:00:00+07:00", "kind": kind, "label": None}) + "\n")
    return d / "reports.jsonl"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _labelled_store(d):
    store = _store(d, SPAM + HAM + ["Chua ai gan nhan cho tin nay", "Tin thu hai chua gan nhan"])
    _store(d, ["Cuoc goi quang cao bat dong san luc 8h sang"], kind="V")
    ws = Workspace(d)
    ws.label([r.id for r in ws.reports[:len(SPAM)]], "spam")
    ws.label([r.id for r in ws.reports[len(SPAM):len(SPAM) + len(HAM)]], "ham")
    ws.label([ws.reports[-1].id], "spam")                # a V report: its content describes a call
    return store, ws


def test_the_store_is_read_with_the_labels_beside_it_as_reports_export_reads_them(tmp_path):
    store, ws = _labelled_store(tmp_path)
    assert all(json.loads(x)["label"] is None for x in store.read_text().splitlines())   # serve's file: untouched
    ds = read_dataset(store)
    rows, _ = labelled_rows(ws.reports, kinds=("S", "FW"))
    assert ds.texts == [r["text"] for r in rows] and len(ds.texts) == len(SPAM) + len(HAM)
    assert ds.labels == [1] * len(SPAM) + [0] * len(HAM) and ds.errors == []
    assert ds.info["unlabelled_skipped"] == 2 and ds.info["call_reports_skipped"] == 1
    assert ds.info["labels_sha256"] and ds.info["labels_file"] == str(tmp_path / "labels.jsonl")
    assert any("2 unlabelled reports skipped" in n for n in ds.notes)


def test_a_store_mixed_with_other_files_says_how_many_reports_it_skipped(tmp_path):
    store, _ = _labelled_store(tmp_path / "d")
    other = tmp_path / "x.jsonl"
    other.write_text("".join(json.dumps({"label": "ham", "text": t}) + "\n" for t in ("see you at 5", "ok thanks")))
    ds, infos = read_all([other, store])
    assert len(ds.texts) == 2 + len(SPAM) + len(HAM)
    assert [i["unlabelled_skipped"] for i in infos] == [0, 2]
    assert [n for n in ds.notes if "unlabelled" in n] == [n for n in ds.notes if str(store) in n and "unlabelled" in n]


def test_ml_train_on_the_store_alone_uses_the_labels_and_prints_the_count(tmp_path):
    store, _ = _labelled_store(tmp_path / "d")
    r = _cli("ml", "train", "--data", store, "--out", tmp_path / "m", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "2 unlabelled reports skipped" in r.stderr and "1 labelled V (call) reports skipped" in r.stderr
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["training_data"][0]["rows"] == len(SPAM) + len(HAM)


def test_a_check_corpus_with_calls_skips_them_and_counts_them(tmp_path):
    lines = [json.loads(x) for x in (CONFIG / "sample" / "messages.jsonl").read_text().splitlines() if x.strip()]
    assert any(o["kind"] == "call" for o in lines)
    for o in lines:
        if o["kind"] == "sms":
            o["label"] = "ham"
    lines.append({"id": "x1", "label": "spam", "sender": "X"})          # neither text nor a call
    p = tmp_path / "messages.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in lines))
    ds = read_dataset(p)
    calls = sum(o["kind"] == "call" for o in lines if "kind" in o)
    assert ds.info["calls_skipped"] == calls and len(ds.texts) == sum(o.get("kind") == "sms" for o in lines)
    assert ds.errors == [f"{p}:{len(lines)}: record has no `text` field (a labelled record needs `label` and `text`)"]
    assert not any("bad JSON line" in e or "'text'" in e for e in ds.errors)
    r = _cli("ml", "eval", "--data", p)
    assert f"{calls} call records skipped" in r.stderr and "KeyError" not in r.stderr and "'text'" not in r.stderr


def test_an_ordinary_jsonl_with_content_is_not_a_report_store(tmp_path):
    """Labelled records written with `content` (labels 1/0, repeated texts) are read as they are: only a file
    with a report's own fields (reporter, time) is read as serve's store."""
    from engine.ml.data import read_labelled
    f = tmp_path / "labelled.jsonl"
    f.write_text("".join(json.dumps({"content": t, "kind": "S", "label": lab}) + "\n"
                         for t, lab in (("vay tien nhanh", "1"), ("hen gap", "0"), ("hen gap", "0"))))
    texts, labels, info, errors = read_labelled(f)
    assert texts == ["vay tien nhanh", "hen gap", "hen gap"] and labels == [1, 0, 0] and not errors


def test_a_store_line_not_in_utf8_is_said_once(tmp_path):
    """Found by an analyst pass: `ml train --data reports.jsonl` named a store line that is not UTF-8 twice (the
    file reader's check, then the store reader's own) and counted it twice in `bad_lines`."""
    store = _store(tmp_path, SPAM[:2])
    with open(store, "ab") as f:
        f.write(b'{"reporter": "84912000999", "content": "\xff bad", "time": "t", "kind": "S", "label": null}\n')
    ds = read_dataset(store)
    assert len(ds.errors) == 1 and f"{store}:3: not valid UTF-8" in ds.errors[0], ds.errors
    assert ds.info["bad_lines"] == 1


def test_the_rows_trained_on_are_the_bytes_the_card_hashes_while_serve_appends(tmp_path, monkeypatch):
    """Found by an analyst pass: the store was hashed from one read and its reports taken from a second, so a
    report serve appended in between (a labelled one: labels can come before the next read) was trained on though
    the card's sha256 did not cover it."""
    import hashlib
    from pathlib import Path
    store, _ = _labelled_store(tmp_path)
    read_bytes = Path.read_bytes
    seen = {}

    def then_serve_appends(self):
        data = read_bytes(self)
        if self == store and "raw" not in seen:
            seen["raw"] = data
            with open(store, "a") as f:      # serve, meanwhile: one more report, one that another analyst labels
                f.write(json.dumps({"reporter": "84912009999", "reported": "84987654321", "content": SPAM[0] + " 2",
                                    "time": "2026-11-30T10:05:00+07:00", "kind": "S", "label": "spam"}) + "\n")
        return data
    monkeypatch.setattr(Path, "read_bytes", then_serve_appends)
    ds = read_dataset(store)
    assert ds.info["sha256"] == hashlib.sha256(seen["raw"]).hexdigest()
    assert SPAM[0] + " 2" not in ds.texts


def test_the_labels_log_given_as_data_names_the_store_beside_it(tmp_path):
    store, _ = _labelled_store(tmp_path / "dd")
    labels = store.with_name("labels.jsonl")
    try:
        read_dataset(labels)
    except DataError as e:
        assert str(e).startswith(f"{labels}:1: the analysts' labels, no texts") and f"--data {store}" in str(e)
    else:
        raise AssertionError("labels.jsonl was read as training data")
    p = _cli("ml", "eval", "--data-dir", tmp_path / "dd", "--data", labels)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and f"--data {store}" in p.stderr
