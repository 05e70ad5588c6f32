"""Letters of other scripts drawn like Latin ones (Cyrillic а е о р с у х і, Greek Α Β Ε Κ Ο …) are read as those
letters by textnorm.fold, what rules match against: a spammer who writes "vаy tіền" with Cyrillic а and і, or
varies "Bаn trung thuong" one look-alike at a time, was past a keyword rule and counted as new content by
FLOOD_SAME_CONTENT each time; a "DК DNC" typed on a Cyrillic keyboard layout was a syntax error."""
import pytest

import engine.textnorm as T
from engine.lists import Lists
from engine.pipeline import Pipeline
from engine.records import parse_record
from engine.rules.loader import load_rules
from engine.rules.shortcode import parse
from tests.test_rules import SETTINGS

RULE = '''
[[rule]]
symbol = "LOAN_SPAM"
action = "drop"
applies_to = ["sms-mt"]
[rule.when]
keywords = ["vay tien"]

[[rule]]
symbol = "SAME_TEXT"
action = "drop"
applies_to = ["sms-mt"]
[rule.when]
counter = { key = ["sender", "content"], window = "5m", limit = 2 }
'''


def _sms(text, minute=0):
    return parse_record(dict(kind="sms", sender="0901234567", recipient=f"09123456{minute:02d}", text=text,
                             time=f"2026-03-02T10:0{minute}:00+07:00"))


@pytest.mark.parametrize("text, folded", [
    ("v\u0430y t\u0456\u1ec1n", "vay tien"),                 # Cyrillic а, і
    ("KHUY\u0415\u0301N M\u0410\u0303I", "khuyen mai"),      # Cyrillic Е, А under Vietnamese marks
    ("\u0392\u0391\u039d", "ban"),                           # Greek Β Α Ν
    ("\u0451", "e"),                                         # Cyrillic ё: е and a mark
    ("\u0434\u043a", "\u0434\u043a"),                        # д к: no Latin look-alike (к is drawn as a small capital)
])
def test_look_alikes_fold_to_latin_on_both_paths(text, folded, monkeypatch):
    assert T.fold(text) == folded
    assert T._C.fold(text, T._fold_text) == T._fold_text(text) == folded
    monkeypatch.setattr(T, "_C", None)
    assert T.fold(text) == folded


def test_every_look_alike_folds_to_ascii_alike_in_c_and_python():
    for ch in map(chr, T.CONFUSABLE):
        assert T._C.fold(ch, T._fold_text) == T._fold_text(ch)
        assert T._fold_text(ch).isascii() and T._fold_text(ch).isalpha(), ch


def test_keyword_and_content_rules_see_through_look_alikes(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(RULE)
    p = Pipeline(SETTINGS, load_rules(d), lists=Lists(), persist=False)
    assert p.judge(_sms("Can v\u0430y t\u0456\u1ec1n nhanh goi ngay")).symbols == ["LOAN_SPAM"]
    # the same text three times, each with a look-alike in another place: the third is over the limit of 2
    texts = ["B\u0430n trung thuong 100 trieu", "Ban trung thu\u043eng 100 trieu", "B\u0430n trung thu\u043eng 100 tri\u0435u"]
    got = [p.judge(_sms(t, i + 1)).symbols for i, t in enumerate(texts)]
    assert got == [[], [], ["SAME_TEXT"]], got


def test_a_dnc_command_typed_with_cyrillic_capitals_registers():
    c = parse("D\u041a DNC", 84912000001)            # Cyrillic К
    assert (c.symbol, c.channel) == ("DNC_REGISTERED", "SV"), c.detail
