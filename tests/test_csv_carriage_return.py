"""A text with a bare carriage return in an exported CSV: csv's writer with lineterminator "\\n" quotes a field holding
"\\n" but not one holding "\\r", which CSV readers (csv.reader, spreadsheets) take for a line end. A 5656 report whose
content held one came back from `reports export --out x.csv` as a cut text and a stray row (ml train read "cr" and
refused "here ..." as a bad row), and a sender ID holding one split the row of the regulator's report table (found
by a probe of odd encodings). Every CSV telfilter writes now quotes such a field (engine/csvcell.py)."""
import csv
import io
import json

from engine.csvcell import dict_writer, writer
from engine.ml.data import read_labelled

from .conftest import jsonl, run_cli

T = "2026-11-28T11:00:00+07:00"
TEXTS = ["cr\rhere vay tien nhanh", "crlf\r\nhere vay", "=cmd|' /C calc'!A0\rx", 'quote " and, comma\r']


def test_writers_quote_a_field_holding_a_carriage_return_and_leave_other_rows_as_csv_writes_them():
    rows = [["a", t, 1, None, 2.5] for t in TEXTS] + [["plain", "a,b", 'q"', None, 3], [""]]
    buf = io.StringIO()
    writer(buf).writerows(rows)
    back = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert back == [["" if v is None else str(v) for v in r] for r in rows]
    plain = io.StringIO()
    csv.writer(plain, lineterminator="\n").writerows(rows[-2:])
    assert buf.getvalue().endswith(plain.getvalue())
    buf = io.StringIO()
    w = dict_writer(buf, ["label", "text"])
    w.writeheader()
    w.writerows({"label": "spam", "text": t} for t in TEXTS)
    assert [r["text"] for r in csv.DictReader(io.StringIO(buf.getvalue(), newline=""))] == TEXTS


def test_reports_export_csv_gives_back_a_text_with_a_carriage_return(data_dir, tmp_path):
    lines = [dict(id=str(i), kind="sms", sender=f"09120001{i:02d}", recipient="5656", text=f"S 0912999{i:03d} {t}",
                  time=T) for i, t in enumerate(TEXTS)]
    p = run_cli("check", "--jsonl", "-", "--data-dir", data_dir, input=jsonl(lines))
    assert p.returncode == 0 and p.stdout.count("SPAM_REPORTED") == len(TEXTS), p.stdout + p.stderr
    stored = [json.loads(ln)["content"] for ln in (data_dir / "reports.jsonl").read_text(encoding="utf-8").split("\n")
              if ln]
    ids = [json.loads(ln)["campaign"] for ln in
           run_cli("reports", "list", "--json", "--data-dir", data_dir, check=True).stdout.splitlines()]
    run_cli("reports", "label", "spam", *ids, "--data-dir", data_dir, check=True)
    out = tmp_path / "labelled.csv"
    run_cli("reports", "export", "--out", out, "--data-dir", data_dir, check=True)
    texts, labels = read_labelled(out)[:2]
    assert sorted(texts) == sorted(stored) and len(texts) == len(TEXTS) and set(labels) == {1}


def test_the_reports_table_of_a_sender_id_with_a_carriage_return_is_one_row(tmp_path):
    log = tmp_path / "v.log"
    line = {"ts": "2026-05-01T10:00:00+07:00", "kind": "sms", "action": "drop", "score": 15, "sender": "SHOP\rEVIL",
            "recipient": "84912345678", "hits": [{"symbol": "URL_BLACKLISTED", "score": 15, "detail": "x", "source": "y"}]}
    log.write_text(json.dumps(line) + "\n")
    run_cli("report", "--log", log, "--out", tmp_path / "rep", "--data-dir", tmp_path / "d", check=True)
    tables = {f.name: list(csv.reader(f.open(encoding="utf-8", newline=""))) for f in (tmp_path / "rep").glob("*.csv")}
    cells = [c for rows in tables.values() for r in rows for c in r]
    assert "SHOP\rEVIL" in cells, tables
    assert "EVIL" not in cells and all(len(r) == len(rows[0]) for rows in tables.values() for r in rows), tables
