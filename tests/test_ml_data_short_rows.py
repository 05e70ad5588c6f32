"""A short row of a file with a header row (a `reports export`, six columns, the text last) is named with what the
header asks: it said "missing columns (expected 3 named columns)" for a six-column header, and a line without a
tab "expected label<TAB>text", the layout of a file without a header."""
from engine.ml.data import read_dataset

HEADER = "label\tkind\tcampaign\tid\treported\ttext\n"
ROW = "spam\tS\tc1234567890\tr1234567890\t'+84987654321\tVay tien nhanh goi 0901234567\n"


def test_a_short_row_under_a_header_says_where_the_header_puts_the_text(tmp_path):
    p = tmp_path / "labelled.tsv"
    p.write_text(HEADER + ROW + "ham\tS\n" + "spam\n")
    ds = read_dataset(p)
    assert ds.texts == ["Vay tien nhanh goi 0901234567"]
    short, notab = ds.errors
    assert short.startswith(f"{p}:3:") and "column 6" in short and "2" in short, short
    assert "expected 3 named columns" not in short
    assert notab.startswith(f"{p}:4:") and "label<TAB>text" not in notab and "column 6" in notab, notab


def test_a_short_csv_row_under_a_header_says_it_too(tmp_path):
    p = tmp_path / "labelled.csv"
    p.write_text("label,kind,campaign,id,reported,text\nspam,S,c1,r1,x,Vay tien nhanh goi 0901234567\nham,S\n")
    ds = read_dataset(p)
    assert len(ds.errors) == 1 and ds.errors[0].startswith(f"{p}:3:") and "column 6" in ds.errors[0], ds.errors
