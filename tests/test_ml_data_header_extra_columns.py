"""A labelled file with a header row: columns the reader does not use are ignored, and a row with more fields than
the header has columns gives the surplus to its text (a TSV text's own tabs, a hand-written CSV's unquoted commas).

Found walking the analyst's loop with a held-out file of its own: under `id<TAB>label<TAB>text<TAB>source` every text
was scored with `<TAB>source` glued on (the surplus rule applied whenever the text was the last *named* column), and
under a `label,text` header `spam,Win a prize, call 0906 now` was read as "Win a prize" (the headerless reader keeps
those commas), both without a word, in `ml train`, `ml eval`, `ml compare` and `ml promote --gate` alike."""
from engine.ml.data import read_dataset


def _read(path, text):
    path.write_text(text, encoding="utf-8")
    ds = read_dataset(path)
    assert ds.errors == []
    return list(zip(ds.labels, ds.texts, ds.langs))


def test_a_tsv_column_after_the_text_is_not_part_of_it(tmp_path):
    rows = _read(tmp_path / "held.tsv", "id\tlabel\ttext\tsource\n1\tspam\tWin a prize now\tuci\n"
                                        "2\tham\tsee you at 5\tmine\n")
    assert rows == [(1, "Win a prize now", None), (0, "see you at 5", None)]
    assert _read(tmp_path / "n.tsv", "label\ttext\tnote\nham\tok\tchecked by An\n") == [(0, "ok", None)]


def test_a_tsv_text_keeps_its_own_tabs_wherever_its_column_is(tmp_path):
    rows = _read(tmp_path / "l.tsv", "label\ttext\tlang\nspam\tWin\ta prize\ten\nham\tok\tvi\n")
    assert rows == [(1, "Win\ta prize", "en"), (0, "ok", "vi")]
    rows = _read(tmp_path / "last.tsv", "label\ttext\nspam\tWin\ta prize\n")     # as before: the text is last
    assert rows == [(1, "Win\ta prize", None)]


def test_a_csv_text_keeps_its_unquoted_commas_under_a_header(tmp_path):
    rows = _read(tmp_path / "h.csv", 'label,text\nspam,Win a prize, call 0906 now\nham,"quoted, fine"\n'
                                     "ham,see you,,\n")
    assert rows == [(1, "Win a prize, call 0906 now", None), (0, "quoted, fine", None), (0, "see you", None)]
    rows = _read(tmp_path / "x.csv", "label,text,lang,,\nham,plain, with a comma,vi,,\nspam,win cash,en\n")
    assert rows == [(0, "plain, with a comma", "vi"), (1, "win cash", "en")]
