"""A CSV separated by ';' (Excel's "CSV" where the decimal mark is a comma: Vietnam, most of Europe) given to
`ml train/eval/cv/compare --data`: a .csv was refused as "CSV header needs `label` and `text` columns (found
'label;text')", with no word of the separator, and any other name had every line a bad line, "expected
label<TAB>text". A header row naming `label` and `text` split at ';' now makes the file a ';' CSV whatever its name
(as one split at tabs or commas does), quoted as Excel quotes; without a header row the file is refused at its
first line, saying it looks separated by ';' and what to do."""
import json

import pytest

from engine.ml.data import DataError, read_dataset

from .conftest import run_cli

EXCEL = ('\ufefflabel;text;kind\r\nspam;"Vay tien nhanh; giai ngan 30 phut";personal\r\n'
         'ham;Anh oi, toi nay an com nha;personal\r\n'
         'spam;"Trung thuong ""50 trieu""\r\nnhan tai bit.ly/x";service\r\nham;Gia 1,5 trieu;\r\n')


@pytest.mark.parametrize("name", ["labelled.csv", "labelled.txt", "labelled.tsv"])
def test_a_semicolon_csv_with_a_header_row_is_read(tmp_path, name):
    p = tmp_path / name
    p.write_text(EXCEL, encoding="utf-8")
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0, 1, 0]
    assert ds.texts == ["Vay tien nhanh; giai ngan 30 phut", "Anh oi, toi nay an com nha",
                        'Trung thuong "50 trieu"\r\nnhan tai bit.ly/x', "Gia 1,5 trieu"]
    assert ds.kinds == ["personal", "personal", "service", None]


def test_a_bad_row_of_a_semicolon_csv_is_named_by_its_line(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("label;text\nspam;Vay tien nhanh\nmaybe;hello\nham;see you; at 5\n")
    ds = read_dataset(p)
    assert ds.labels == [1, 0] and ds.texts == ["Vay tien nhanh", "see you; at 5"]     # (surplus: the text's own)
    assert ds.errors == [f"{p}:3: label must be spam or ham (or 1 / 0), got 'maybe'"]


@pytest.mark.parametrize("name", ["noheader.csv", "noheader.txt"])
def test_a_semicolon_csv_without_a_header_row_is_refused_with_what_to_do(tmp_path, name):
    p = tmp_path / name
    p.write_text("spam;Vay tien nhanh\nham;Anh oi\n")
    with pytest.raises(DataError) as e:
        read_dataset(p)
    assert str(e.value) == (f"{p}:1: looks separated by ';' (a spreadsheet's CSV where the decimal mark is a comma): "
                            "add the header row label;text (the file is then read as separated by ';'), or save "
                            "it as CSV separated by commas")


def test_a_comma_csv_whose_texts_hold_semicolons_is_still_a_comma_csv(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("label,text\nspam,Vay tien; nhanh\nham,a;b;c\n")
    ds = read_dataset(p)
    assert ds.errors == [] and ds.texts == ["Vay tien; nhanh", "a;b;c"]
    q = tmp_path / "n.csv"
    q.write_text("spam,Vay tien; nhanh\nham,a;b\n")
    assert read_dataset(q).texts == ["Vay tien; nhanh", "a;b"]


def test_ml_eval_reads_it(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_text(EXCEL, encoding="utf-8")
    r = run_cli("ml", "eval", "--model", "engine/ml/default_model", "--data", p)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    m = json.loads(r.stdout)
    assert (m["n"], m["spam"], m["ham"]) == (4, 2, 2)
