"""Labelled files as spreadsheets and scripts write them for `ml train` / `ml eval` / `ml compare`: without a header
row (label,text, as a TSV may be) or with one naming other columns, and with texts that hold newlines, where a bad
row must be named by the line it starts on."""
import subprocess
import sys

import pytest

from engine.ml.data import read_dataset

from .conftest import ROOT


def test_a_csv_without_a_header_row_is_read_as_label_text(tmp_path):
    """The README: `ml train` reads TSV, CSV, JSONL ... with or without a header row. A CSV without one was
    refused whole (exit 2, "CSV header needs `label` and `text` columns"), its first row taken as the header."""
    p = tmp_path / "noheader.csv"
    p.write_bytes(b'\xef\xbb\xbfspam,"Vay tien nhanh, giai ngan 30 phut"\r\nham,Anh oi toi nay an com nha nhe\r\n'
                  b'1,"Trung thuong 50 trieu, nhan tai bit.ly/x"\r\n')
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0, 1]
    assert ds.texts[0] == "Vay tien nhanh, giai ngan 30 phut"


def test_a_csv_without_a_header_keeps_the_commas_of_an_unquoted_text(tmp_path):
    """Without a header a row is label then text: the commas after the label are the text's, as a TSV's tabs are.
    A hand-written row with an unquoted comma was trained on its text up to that comma, the rest dropped silently."""
    p = tmp_path / "hand.csv"
    p.write_text('spam,Vay tien nhanh, giai ngan 30 phut, goi 0912345678\nham,"Anh oi, toi nay an com nha"\n'
                 'ham,ok\nham,"from a spreadsheet, a column C once used",,\n')
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0, 0, 0]
    assert ds.texts == ["Vay tien nhanh, giai ngan 30 phut, goi 0912345678", "Anh oi, toi nay an com nha", "ok",
                        "from a spreadsheet, a column C once used"]


def test_a_csv_header_naming_other_columns_says_what_it_found(tmp_path):
    p = tmp_path / "renamed.csv"
    p.write_text("category,message\nspam,Vay tien nhanh\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "train", "--data", p, "--out", tmp_path / "m",
                        "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert f"{p}:1: CSV header needs `label` and `text` columns (found 'category', 'message')" in r.stderr


def test_a_bad_row_after_texts_with_newlines_is_named_by_the_line_it_starts_on(tmp_path):
    """csv.reader's line_num is where a record ended: a bad row whose text spans three lines was reported two
    lines below where it starts, and every row after a text with a newline one line too far down."""
    p = tmp_path / "multi.csv"
    p.write_bytes(b'label,text\r\nspam,"first line\r\nsecond line"\r\nspma,"bad label\r\nnext\r\nlast"\r\n'
                  b'ham,ok\r\nhm,x\r\n')
    ds = read_dataset(p)
    assert ds.texts == ["first line\r\nsecond line", "ok"]
    assert [e.split(": ")[0] for e in ds.errors] == [f"{p}:4", f"{p}:8"]


def test_a_tsv_header_naming_other_columns_is_said_to_be_one(tmp_path):
    """A TSV whose header names its columns otherwise ("class<TAB>sms") was told "label must be spam or ham
    (or 1 / 0), got 'class'", as if a data row had a bad label; its rows are still read as label<TAB>text."""
    p = tmp_path / "renamed.tsv"
    p.write_text("class\tsms\nspam\tVay tien nhanh\nham\tAnh oi toi nay an com nha nhe\n")
    ds = read_dataset(p)
    assert ds.labels == [1, 0]
    assert ds.errors == [f"{p}:1: a header row needs `label` and `text` columns (found 'class', 'sms'); without a "
                         "header, each line is label<TAB>text"]


def test_a_label_with_no_text_is_a_bad_line_in_every_format(tmp_path):
    """A spreadsheet's label filled down past its texts ("ham," rows) became training messages with no text (all
    of them one example, learnt as ham), silently; `reports export` leaves an empty report out."""
    files = {"e.tsv": "label\ttext\nham\t\nspam\tVay tien nhanh\n",
             "e.csv": "label,text\nham,\" \"\nspam,Vay tien nhanh\n",
             "e.jsonl": '{"label": "ham", "text": ""}\n{"label": "spam", "text": "Vay tien nhanh"}\n'}
    for name, text in files.items():
        p = tmp_path / name
        p.write_text(text)
        ds = read_dataset(p)
        assert ds.texts == ["Vay tien nhanh"] and ds.labels == [1], name
        line = 1 if name.endswith("jsonl") else 2
        assert ds.errors == [f"{p}:{line}: empty text"], name


def test_an_export_is_read_by_its_header_whatever_its_name(tmp_path):
    """`reports export --format csv --out labelled.txt` wrote a file `ml train` / `ml eval` could not read: not
    named .csv, it was read as a TSV and every line was "expected label<TAB>text"."""
    p = tmp_path / "labelled.txt"
    p.write_text('label,kind,campaign,id,reported,text\nspam,S,c1,r1,\'+84912345678,"Vay tien nhanh, 0% lai"\n'
                 "ham,S,c2,r2,'+84912345679,Anh oi toi nay an com nha nhe\n")
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0] and ds.texts[0] == "Vay tien nhanh, 0% lai"
    assert ds.kinds == ["S", "S"]
    p = tmp_path / "labelled.csv"                   # and the other way: a TSV export named .csv
    p.write_text("label\tkind\ttext\nspam\tS\tVay tien nhanh, 0% lai\nham\tS\tAnh oi, toi nay an com nha nhe\n")
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0] and ds.texts[1] == "Anh oi, toi nay an com nha nhe"


def test_a_quoted_text_left_open_to_the_end_of_the_file_is_a_bad_line(tmp_path):
    """A quote opened and never closed made the rest of the file one text: `spam,"Win…` then every row after it
    was read as one spam message, the rows lost to training with no word (exit 0). Now the line it opens on is
    named and nothing after it is trained on; a text with a line break, closed, is still one row."""
    p = tmp_path / "open.csv"
    p.write_text('label,text\nham,"two lines,\nclosed"\nspam,"Vay tien nhanh giai ngan 30 phut\n'
                 'ham,Anh oi toi nay an com nha nhe\nham,Con den truong roi\n')
    ds = read_dataset(p)
    assert ds.texts == ["two lines,\nclosed"] and ds.labels == [0]
    assert len(ds.errors) == 1 and ds.errors[0].startswith(f"{p}:4: a quoted text opened on this line is never closed")


@pytest.mark.parametrize("header", ["label,text\n", ""])
@pytest.mark.parametrize("ham, spam", [("ham", "spam"), ("0", "1")])
def test_a_quoted_text_left_open_in_the_middle_of_the_file_is_a_bad_line(tmp_path, header, ham, spam):
    """A quote never closed, a later quote closing it: every row between was read as part of that one text (here
    three messages trained as one spam text), with no word. Now the line it opens on is named, with the line that
    begins as a row of its own; the rows after it, and texts with line breaks closed as they should be (one of
    them with a line that begins `0,` as a decimal does), are read."""
    n = len(header.splitlines())
    p = tmp_path / "open_mid.csv"
    p.write_text(header + f'{ham},"two lines,\nclosed"\n{spam},"Vay tien nhanh giai ngan 30 phut\n'
                 f'{ham},Anh oi toi nay an com nha nhe\n{ham},Con den truong roi\n{spam},"Trung thuong, goi ngay"\n'
                 f'{ham},"Gia moi:\n0,50 EUR / tin"\n{ham},after\n')
    ds = read_dataset(p)
    assert ds.texts == ["two lines,\nclosed", "Gia moi:\n0,50 EUR / tin", "after"] and ds.labels == [0, 0, 0]
    assert ds.errors == [f"{p}:{n + 3}: a quoted text opened on this line runs on into line {n + 4}, which begins "
                         f"as a row of its own: lines {n + 3} to {n + 6} would be one text; close the quote with \""]


def test_a_quoted_text_with_a_numbered_list_is_one_row_with_1_0_labels(tmp_path):
    """A text's line may begin `1,` as a numbered list does: with 1 / 0 labels that is how a row begins too, and
    the whole text was named as a quote left open. It is one only when its quoting is broken as an open quote
    leaves it (a later quote closing it, then more text)."""
    p = tmp_path / "list.csv"
    p.write_text('1,"Uu dai hom nay:\n1, giam 50% cuoc goi\n2, tang 5GB data\nSoan DK gui 9123"\n0,"ok\n0, 5 phut nua"\n'
                 "0,after\n")
    ds = read_dataset(p)
    assert ds.errors == [] and ds.labels == [1, 0, 0]
    assert ds.texts[0] == "Uu dai hom nay:\n1, giam 50% cuoc goi\n2, tang 5GB data\nSoan DK gui 9123"
