"""Rule-set warnings (engine/rules/lint.py): things that load but never take effect, each with one rule set
that warns and one that does not; the shipped pack warns nothing; a warning never changes a verdict."""
import shutil

import pytest

from engine.rules import lint
from engine.rules.loader import load_rules
from engine.textnorm import _fold_text

from .conftest import CONFIG, run_cli

HEAD = '[actions]\ntag = 3.0\ndrop = 10.0\n'


def _load(tmp_path, body, head=HEAD):
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "a.toml").write_text(head + body)
    return load_rules(d)


def _msgs(rs):
    return [w.message for w in rs.warnings]


def test_shipped_pack_warns_nothing():
    assert load_rules(CONFIG / "rules").warnings == []
    p = run_cli("rules", "check", "--strict", CONFIG / "rules")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    # (no ESME account is shipped: with one from the environment, as a unit would give it, nothing is warned)
    p = run_cli("config", "check", "--strict", CONFIG, env={"TELFILTER_ESME_ACCOUNTS": "esme1:pw"})
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


UNUSED = '''
[[rule]]
symbol = "__AD"
[rule.when]
keywords = ["qc"]
[[rule]]
symbol = "__ONLY_FOR_AD"
[rule.when]
expr = "__AD"
[[rule]]
symbol = "AD"
score = 4.0
[rule.when]
expr = "%s"
'''


def test_unused_helper(tmp_path):
    rs = _load(tmp_path, UNUSED % "__AD")
    assert [w.message for w in rs.warnings] == [
        "helper __ONLY_FOR_AD never affects a verdict: no rule's expr names it (a helper has no score or action of "
        "its own)"]
    w = rs.warnings[0]
    assert str(w).startswith(f"{w.path}:10:1: warning: helper __ONLY_FOR_AD")
    assert _load(tmp_path, UNUSED % "__ONLY_FOR_AD").warnings == []


def test_helper_named_only_by_an_unused_helper(tmp_path):
    body = UNUSED % "__AD" + '[[rule]]\nsymbol = "__CHAIN"\n[rule.when]\nexpr = "__ONLY_FOR_AD"\n'
    msgs = _msgs(_load(tmp_path, body))
    assert any("__ONLY_FOR_AD never affects a verdict: it is named only by __CHAIN" in m for m in msgs)
    assert any("__CHAIN never affects a verdict: no rule's expr names it" in m for m in msgs)


REGEX = '''
[[rule]]
symbol = "R"
score = 4.0
[rule.when]
text_regex = %s
'''


@pytest.mark.parametrize("pattern, dead", [
    ("'straße'", "ß"),                       # casefold makes it "ss": folded text never holds ß
    ("'free\\u00adgift'", "\u00ad"),         # soft hyphen: fold removes it
    ("'free\u200bgift'", "\u200b"),          # zero-width space, written as itself
    ("'khuye\\u0302n'", "\u0302"),           # a combining mark written as an escape (the pattern's fold misses it)
    ("'(?-i:KM)'", "K"),                     # case-sensitive capitals: fold lower-cases the text
    ("'[\\u0300-\\u0344]'", "\u0300"),       # a class of combining marks only (U+0345 would match ι)
    ("'(?:ß|\u200b)x'", "ß"),                # every alternative dead
    ("'\\u00e9'", "\u00e9"),                  # é written as an escape is not folded: fold removes the accent
])
def test_regex_that_can_never_match_the_folded_text(tmp_path, pattern, dead):
    rs = _load(tmp_path, REGEX % pattern)
    assert len(rs.warnings) == 1, _msgs(rs)
    assert f"U+{ord(dead):04X}" in rs.warnings[0].message and "so the condition never holds" in rs.warnings[0].message
    assert (rs.warnings[0].line, rs.warnings[0].col) == (9, 1)


@pytest.mark.parametrize("pattern", [
    "'KHUYẾN MÃI'", "'Đăng ký'", "'[A-Z]{3}'", "'(?-i:km)'", "'ß?x'", "'ß|x'", "'(?!ß)x'", "'[ßx]'",
    "'Æ'", "'ﬁ'", "'[\\u0300-\\u036f]'", "'[\\u00c0-\\u00ff]'", "'ð'", "'Σ'", "'🎁'", "'(?i:ẞ)?a'",
])
def test_regex_that_can_match_warns_nothing(tmp_path, pattern):
    assert _load(tmp_path, REGEX % pattern).warnings == []


def test_text_regex_list_and_text_not_regex(tmp_path):
    rs = _load(tmp_path, REGEX % "['ß', 'x']")
    assert len(rs.warnings) == 1 and "so this pattern never matches" in rs.warnings[0].message
    rs = _load(tmp_path, '[[rule]]\nsymbol = "R"\nscore = 4.0\n[rule.when]\nhas_url = true\ntext_not_regex = "ß"\n')
    assert len(rs.warnings) == 1 and "so it excludes nothing" in rs.warnings[0].message


def test_dead_regex_judges_as_before(tmp_path):
    from engine.verdict import Message
    from engine.pipeline import Pipeline
    from engine.config import load_settings
    from engine.lists import Lists
    from datetime import datetime, timezone
    rs = _load(tmp_path, REGEX % "'straße'")
    p = Pipeline(load_settings(CONFIG), rs, lists=Lists())
    for text in ("straße", "STRASSE", "strasse", "Straße"):
        v = p.judge(Message("0901234567", "0912345678", text, datetime(2026, 3, 2, 3, tzinfo=timezone.utc)))
        assert v.hits == ()


def test_folded_alphabet_is_every_character_fold_outputs():
    want = set()
    for cp in range(0x80, 0x110000):
        if not 0xD800 <= cp < 0xE000:
            want.update(c for c in _fold_text(chr(cp)) if not c.isascii())
    assert {c for c in lint.folded_alphabet() if not c.isascii()} == want


ACTIONS = '''
[[rule]]
symbol = "R"
applies_to = %s
action = "%s"
%s
[rule.when]
sender_blacklisted = true
'''


@pytest.mark.parametrize("scopes, action, extra, want", [
    ('["sms-mt"]', "allow", "", 'action = "allow" forces nothing'),
    ('["sms-mt"]', "tag", 'smpp_status = "ESME_RINVSRCADR"', "smpp_status is never answered: only a rule with"),
    ('["call"]', "drop", 'smpp_status = "ESME_RINVSRCADR"', "smpp_status is never answered: the rule applies to calls"),
    ('["call"]', "tag", "sip_code = 608", "sip_code is never answered: only a rule with"),
    ('["sms-mt", "sms-mo"]', "drop", "sip_code = 608", "sip_code is never answered: the rule does not apply"),
    ('["sms-mt", "call"]', "drop", 'sip_code = 608\nsmpp_status = 10', None),
    ('["sms-mt"]', "tag", "", None),
])
def test_actions_and_answers_never_used(tmp_path, scopes, action, extra, want):
    msgs = _msgs(_load(tmp_path, ACTIONS % (scopes, action, extra)))
    assert msgs == ([] if want is None else [f"R: {want}" + msgs[0][len(f"R: {want}"):]]) and (
        want is None or want in msgs[0]), msgs


@pytest.mark.parametrize("when, dead", [
    ('expr = "__A and not __A"', True),
    ('expr = "(__A or __B) and not __A and not __B"', True),
    ('expr = "__A and not __B"', False),
    ('local_time_inside = "10:00-12:00"\nlocal_time_outside = "07:00-22:00"', True),
    ('local_time_inside = "21:00-23:00"\nlocal_time_outside = "07:00-22:00"', False),
    # one sender per key: never more than 1 distinct sender (accepted without a word before)
    ('counter = { key = ["sender", "recipient"], window = "1h", limit = 2, distinct = "sender" }', True),
    ('counter = { key = "recipient", window = "1h", limit = 1, distinct = "recipient" }', True),
    ('counter = { key = ["template"], window = "1h", limit = 10, distinct = "sender" }', False),
    # each keyword holds one the rule refuses (a list copied to the wrong key): accepted without a word before
    ('keywords = ["vay tien", "Giải ngân"]\nkeywords_absent = ["giai ngan", "vay"]', True),
    ('keywords = "vay"\nkeywords_absent = ["vay"]', True),
    ('keywords = ["vay tien", "giai ngan"]\nkeywords_absent = ["vay"]', False),      # "giai ngan" can hold
    ('keywords = ["vay"]\nkeywords_absent = ["vay tien"]', False),                   # "vay" alone can hold
])
def test_rule_that_never_holds(tmp_path, when, dead):
    body = ('[[rule]]\nsymbol = "__A"\n[rule.when]\nkeywords = "a"\n[[rule]]\nsymbol = "__B"\n[rule.when]\n'
            'keywords = "b"\n[[rule]]\nsymbol = "R"\nscore = 4.0\nexpr_ = 1\n[rule.when]\n' + when + "\n")
    body = body.replace("expr_ = 1\n", "")
    if "__A" not in when:
        body = body.replace('[[rule]]\nsymbol = "R"', '[[rule]]\nsymbol = "S"\nscore = 1.0\n[rule.when]\n'
                                                      'expr = "__A or __B"\n[[rule]]\nsymbol = "R"')
    elif "__B" not in when:
        body = body.replace('[[rule]]\nsymbol = "R"', '[[rule]]\nsymbol = "S"\nscore = 1.0\n[rule.when]\n'
                                                      'expr = "__B"\n[[rule]]\nsymbol = "R"')
    msgs = _msgs(_load(tmp_path, body))
    assert [m for m in msgs if m.startswith("R never holds")] == (msgs if dead else []) and len(msgs) == dead, msgs


def test_never_holds_propagates_through_expr(tmp_path):
    body = ('[[rule]]\nsymbol = "__X"\n[rule.when]\ntext_regex = "ß"\n'
            '[[rule]]\nsymbol = "R"\nscore = 4.0\n[rule.when]\nexpr = "__X"\nhas_url = true\n'
            '[[rule]]\nsymbol = "S"\nscore = 4.0\n[rule.when]\nexpr = "not __X"\n')
    msgs = _msgs(_load(tmp_path, body))
    assert any(m == "R never holds: its expr needs __X, which never holds" for m in msgs), msgs
    assert not any(m.startswith("S never") for m in msgs)


def test_duplicate_conditions(tmp_path):
    body = ('[[rule]]\nsymbol = "A"\nscore = 4.0\n[rule.when]\nkeywords = ["x"]\nhas_url = true\n'
            '[[rule]]\nsymbol = "B"\naction = "tag"\napplies_to = ["sms-mt"]\n[rule.when]\nhas_url = true\n'
            'keywords = ["x"]\n')
    msgs = _msgs(_load(tmp_path, body))
    assert len(msgs) == 1 and msgs[0].startswith("B has the same conditions as A (at "), msgs
    assert _msgs(_load(tmp_path, body.replace('keywords = ["x"]\n', 'keywords = ["y"]\n', 1))) == []
    stateful = body.replace("has_url = true", 'counter = { key = ["sender"], window = "1h", limit = 3 }')
    assert _msgs(_load(tmp_path, stateful)) == []        # two counters: each its own namespace


def test_threshold_at_or_below_zero(tmp_path):
    body = '[[rule]]\nsymbol = "A"\nscore = 4.0\n[rule.when]\nkeywords = ["x"]\n'
    rs = _load(tmp_path, body, head="[actions]\ntag = 0\ndrop = 10.0\n")
    assert _msgs(rs) == ["[actions] tag = 0: a message with no hits scores 0, so every message is tagged"]
    assert (rs.warnings[0].line, rs.warnings[0].col) == (2, 7)
    assert _load(tmp_path, body).warnings == []


def test_cli_prints_warnings_and_strict_fails(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(HEAD + UNUSED % "__AD")
    p = run_cli("rules", "check", "--no-examples", d)
    assert p.returncode == 0, p.stderr
    assert ":10:1: warning: helper __ONLY_FOR_AD never affects a verdict" in p.stderr
    assert "1 warning" in p.stdout + p.stderr
    p = run_cli("rules", "check", "--no-examples", "--strict", d)
    assert p.returncode == 1 and "warning: helper" in p.stderr
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "zz.toml").write_text(UNUSED % "__AD")
    p = run_cli("config", "check", cfg)
    assert p.returncode == 0 and "zz.toml:7:1: warning: helper __ONLY_FOR_AD" in p.stderr, p.stderr
    p = run_cli("config", "check", "--strict", cfg)
    assert p.returncode == 1, p.stderr


def test_reload_logs_warnings_once(tmp_path, caplog):
    import logging
    from engine.config import load_settings
    from engine.lists import Lists
    from engine.pipeline import Pipeline
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(HEAD + UNUSED % "__ONLY_FOR_AD")
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists())
    (d / "a.toml").write_text(HEAD + UNUSED % "__AD")
    with caplog.at_level(logging.WARNING, logger="telfilter"):
        assert p.reload_rules() == []
    said = [r.getMessage() for r in caplog.records if "warning: helper" in r.getMessage()]
    assert len(said) == 1 and "__ONLY_FOR_AD" in said[0]


def test_a_reload_does_not_compute_the_folded_table_on_the_loop(tmp_path, monkeypatch):
    """folded_alphabet costs seconds of CPU (once per process); Pipeline.reload_rules runs on serve's event loop, so
    there a pattern needing it is not checked (one warning says so) unless serve's start computed the table."""
    monkeypatch.setattr(lint, "_ALPHABET", None)
    computed = []
    real = lint.folded_alphabet
    monkeypatch.setattr(lint, "folded_alphabet", lambda: computed.append(1) or real())
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(HEAD + REGEX % "'straße'")
    rs = load_rules(d, full_lint=False)
    assert computed == [] and len(rs.warnings) == 1 and "not checked" in rs.warnings[0].message, _msgs(rs)
    assert "rules check" in rs.warnings[0].message
    rs = load_rules(d)                                     # rules check, config check, serve's start
    assert computed and len(rs.warnings) == 1 and "U+00DF" in rs.warnings[0].message
    rs = load_rules(d, full_lint=False)                    # a reload once the table is there: checked
    assert len(rs.warnings) == 1 and "U+00DF" in rs.warnings[0].message


@pytest.mark.parametrize("content", [b"", b"# emptied by `>` in place of `>>`\n", b"\xef\xbb\xbf\r\n"])
def test_an_empty_file_and_a_set_without_scoring_rules_are_warned_of(tmp_path, content):
    # both loaded without a word before: a reload of a file truncated by mistake took its rules out of force, and a
    # set of empty files was "OK: 0 rules" even under --strict
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    (d / "20-advertising-sms.toml").write_bytes(content)
    rs = load_rules(d)
    assert [(w.path.rsplit("/", 1)[1], w.line, w.message) for w in rs.warnings] == [
        ("20-advertising-sms.toml", 1, "the file holds no [[rule]], [actions] or [fixtures]: it takes no effect")]
    for f in d.glob("*.toml"):
        f.write_bytes(content)
    assert sorted(w.message for w in load_rules(d).warnings)[-1] == \
        "the file holds no [[rule]], [actions] or [fixtures]: it takes no effect"
    assert "no scoring rule: no message is judged by the rules" in _msgs(load_rules(d))
    p = run_cli("rules", "check", "--strict", d)
    assert p.returncode == 1 and "warning: no scoring rule" in p.stderr, p.stderr


def test_a_sender_written_as_a_wildcard_is_warned_of(tmp_path):
    # `sender = ["1900*"]` to catch a prefix loaded without a word and never held: a sender is matched whole
    rs = _load(tmp_path, '[[rule]]\nsymbol = "PREMIUM_CALLER"\napplies_to = ["call"]\naction = "tag"\n[rule.when]\n'
                         'sender = ["1900*", "19001234"]\n')
    assert [(w.line, w.message) for w in rs.warnings] == [
        (9, "PREMIUM_CALLER: sender '1900*' is matched whole, as a number or a name: '*', '?' and '%' are no "
            "wildcards (no condition matches a sender by its prefix)")]
    assert _load(tmp_path, '[[rule]]\nsymbol = "PREMIUM_CALLER"\napplies_to = ["call"]\naction = "tag"\n'
                           '[rule.when]\nsender = ["19001234"]\n').warnings == []
