"""`ml train`'s log says when a language has too few examples for a threshold of its own and is held to the
largest language's: it said "language en: 175 messages (24 spam)" and then "note: vi: 264 ham cannot show a
blocked-ham rate ..." with 264 the ham of vi and en together (vi had 113), figures the analyst could not find."""
import pytest

pytest.importorskip("sklearn")

from engine.ml.data import read_dataset
from engine.ml.train import train

from .conftest import ROOT


def test_the_log_names_a_language_pooled_into_another_and_counts_it_there(tmp_path):
    vi = read_dataset(ROOT / "engine/ml/data/vi_sms_train.tsv")
    en = read_dataset(ROOT / "engine/ml/data/sms_spam_collection_train.tsv")
    en_rows = [(t, y) for t, y in zip(en.texts, en.labels) if y][:10] + \
              [(t, y) for t, y in zip(en.texts, en.labels) if not y][:60]
    texts = vi.texts[:300] + [t for t, _ in en_rows]
    labels = vi.labels[:300] + [y for _, y in en_rows]
    lines = []
    card, _ = train(texts, labels, [], tmp_path / "m", progress=False, log=lines.append)
    langs = card["languages"]
    assert langs["en"]["group"] == "vi"
    en_line = next(x for x in lines if x.strip().startswith("language en:"))
    assert "vi" in en_line and "too few" in en_line, lines
    notes = [x for x in lines if "note: vi" in x]
    assert notes and all("with en" in x for x in notes), lines
