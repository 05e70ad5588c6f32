"""A labelled file without its header row whose rows hold a third column (`label<TAB>kind<TAB>text`, the shipped
Vietnamese set with its header deleted by hand) is refused, naming the file and line and asking for the header;
without a header a row is label then text, so each text was read with its kind glued on (`scam<TAB>Vay tien…`),
trained on as a feature and scored so by `ml eval` / `ml compare`, with no word. Texts that hold tabs or commas of
their own are read as before."""
import pytest

from engine.ml.data import DataError, read_dataset

from .conftest import ROOT

VI = ROOT / "engine" / "ml" / "data" / "vi_sms_train.tsv"


def test_a_tsv_with_a_kind_column_and_no_header_row_is_refused(tmp_path):
    p = tmp_path / "vi_noheader.tsv"
    body = VI.read_text(encoding="utf-8").split("\n", 1)[1]         # the header row removed, as analysts do
    p.write_text(body, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_dataset(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:1: no header row, and column 2 of every row is one word of a few (")
    assert "add the header row" in msg and "label<TAB>kind<TAB>text" in msg
    p.write_text("label\tkind\ttext\n" + body, encoding="utf-8")     # the fix the message asks for
    fixed, shipped = read_dataset(p), read_dataset(VI)
    assert (fixed.texts, fixed.labels, fixed.kinds, fixed.errors) == \
        (shipped.texts, shipped.labels, shipped.kinds, shipped.errors)


@pytest.mark.parametrize("name, body, col", [
    ("k.csv", 'spam,scam,"Vay tien nhanh, giai ngan 30 phut"\nham,personal,Anh oi toi nay an com nha nhe\n'
              "spam,scam,Trung thuong 50 trieu\n", 2),
    ("last.tsv", "spam\tVay tien nhanh\tscam\nham\tAnh oi toi nay an com nha nhe\tpersonal\n"
                 "spam\tTrung thuong 50 trieu\tscam\n", 3),            # the kind after the text
])
def test_a_kind_column_is_refused_in_a_csv_and_after_the_text(tmp_path, name, body, col):
    p = tmp_path / name
    p.write_text(body)
    with pytest.raises(DataError) as e:
        read_dataset(p)
    assert str(e.value).startswith(f"{p}:1: no header row, and column {col} of every row is one word of a few (scam, ")


@pytest.mark.parametrize("body", [
    # a tab in some texts only: label<TAB>text, the tabs the texts' own
    "spam\tWIN\tclaim at bit.ly/x\nham\tsee you at 7\nham\tok\tthanks\n",
    # a tab in every text, the words before it not from a few: still texts
    "spam\tCall now\tto claim\nham\tSorry, late\tsee you\nham\tok then\tbye\n",
    # one word before every tab, none repeated (nothing says column): read as texts
    "spam\tWINNER\tclaim now\nham\tHi\thow are you\n",
])
def test_texts_with_tabs_of_their_own_are_still_read_as_label_text(tmp_path, body):
    p = tmp_path / "tabs.tsv"
    p.write_text(body)
    ds = read_dataset(p)
    assert ds.errors == []
    assert ds.texts == [line.split("\t", 1)[1] for line in body.splitlines()]
