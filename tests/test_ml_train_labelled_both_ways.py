"""`ml train` says which texts its data labels both spam and ham (kept as spam, as before): an analyst's ham
correction of a campaign, trained beside an older export that had it spam, was lost without a word."""
import pytest

from engine.ml import train as T

HAM = "Quy khach vui long thanh toan cuoc thang 11 truoc ngay 15"


def test_dedup_names_each_text_labelled_both_ways_once():
    both = []
    texts, y, _ = T.dedup([HAM, "win a prize now", HAM.upper(), HAM, "see you at 5"], [1, 1, 0, 0, 0], both=both)
    assert both == [HAM]
    assert list(y) == [True, True, False]               # kept as spam: the rule is unchanged
    assert T.dedup([HAM, HAM], [0, 0], both=(same := []))[1].tolist() == [False] and same == []


def test_train_says_it(tmp_path):
    said = []
    with pytest.raises(ValueError, match="need at least"):       # too few to train: said before that all the same
        T.train([HAM, HAM, "win a prize now"], [1, 0, 1], [], tmp_path / "m", progress=False, log=said.append)
    assert any("1 text(s) labelled both spam and ham in the data, trained as spam" in s and HAM[:40] in s
               for s in said), said
