"""A failing rule example says why, so the engineer tuning a rule knows which condition to look at: a hit example
that missed names what of the rule does not hold (its expr's symbols, each condition, its scope), a miss example
that hit gives the rule's evidence; failures come in file order. It said "example must hit but missed (verdict [])"
and "example must miss but hit", hit examples first."""
from .conftest import run_cli

RULE = '''[[rule]]
symbol = "LOAN_SPAM"
score = 6.0
applies_to = ["sms-mt"]
[rule.when]
keywords = ["vay tien", "giai ngan"]
sender_kind = "number"
counter = { key = ["sender"], window = "1h", limit = 1 }
[[rule.examples.miss]]
text = "Vay tiền nhanh"
prior = [{ text = "vay tien" }]
[[rule.examples.hit]]
sender = "SHOPABC"
text = "Vay tien nhanh, giai ngan 5 phut"
[[rule.examples.hit]]
kind = "call"
caller = "0901234567"
'''


def test_each_failure_says_why_in_file_order(tmp_path):
    (tmp_path / "a.toml").write_text('[fixtures]\nsenders = ["SHOPABC,Shop ABC,QC,,,"]\n\n' + RULE)
    p = run_cli("rules", "check", tmp_path)
    assert p.returncode == 1, p.stderr
    said = [line.split("a.toml:", 1)[1] for line in p.stderr.splitlines() if "a.toml:" in line]
    assert said == [
        "12: LOAN_SPAM: example must miss but hit (keyword 'vay tien'; sender is a number; 2 messages per sender "
        "within 1h (limit 1))",
        "15: LOAN_SPAM: example must hit but missed (verdict []; sender_kind does not hold; counter does not hold)",
        "18: LOAN_SPAM: example must hit but missed (verdict []; it is call, the rule applies to sms-mt: make the "
        "example an SMS (leave kind = \"call\" out))"], p.stderr


def test_a_composite_that_is_false_names_its_symbols(tmp_path):
    (tmp_path / "a.toml").write_text('''[[rule]]
symbol = "__LOAN"
[rule.when]
keywords = ["vay tien"]
[[rule]]
symbol = "__QC"
[rule.when]
text_regex = '^\\[qc\\]'
[[rule]]
symbol = "LOAN_AD"
action = "tag"
[rule.when]
expr = "__LOAN and not __QC"
[[rule.examples.hit]]
text = "[QC] vay tien"
''')
    p = run_cli("rules", "check", tmp_path)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines()[0] == \
        f"{tmp_path}/a.toml:14: LOAN_AD: example must hit but missed (verdict []; expr is false: __LOAN holds, __QC holds)"


def test_an_example_out_of_the_rules_scope_says_what_to_write(tmp_path):
    # an example is an MT SMS unless it says otherwise: for a rule on subscribers' MO it only said "it is sms-mt"
    (tmp_path / "a.toml").write_text('[[rule]]\nsymbol = "MO_PRIZE"\napplies_to = ["sms-mo"]\nscore = 1\n'
                                     '[rule.when]\nkeywords = ["trung thuong"]\n'
                                     '[[rule.examples.hit]]\ntext = "Ban da trung thuong"\n'
                                     '[[rule.examples.hit]]\ntext = "Ban da trung thuong"\ndirection = "mo"\n')
    p = run_cli("rules", "check", tmp_path)
    assert p.returncode == 1, p.stderr
    assert [line.split("a.toml:", 1)[1] for line in p.stderr.splitlines() if "a.toml:" in line] == [
        "7: MO_PRIZE: example must hit but missed (verdict []; it is sms-mt, the rule applies to sms-mo: write "
        "direction = \"mo\" in the example)"], p.stderr
