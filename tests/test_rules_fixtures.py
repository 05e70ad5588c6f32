"""`[fixtures]` rows (the lists rule examples run against) that are wrong are reported as `file:line: fixtures: bad
KIND row …: why`, as `lists import` says it; a row with too few cells stopped `rules check` with a traceback."""
from .conftest import run_cli

RULE = '''[[rule]]
symbol = "BLACKLISTED"
applies_to = ["sms-mt"]
action = "drop"
[rule.when]
sender_blacklisted = true
[[rule.examples.hit]]
sender = "0987000666"
text = "hi"
'''


def test_bad_fixture_rows_are_reported_with_file_and_line(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text('[fixtures]\nconsent = ["Shop ABC"]\ndnc = ["0912000001"]\n'
                              'senders = ["SHOPABC,Shop ABC,QC,,,,extra"]\nblacklist = ["number,0987000666"]\n\n' + RULE)
    p = run_cli("rules", "check", d)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1, p.stderr
    assert "a.toml:2: fixtures: bad consent row 'Shop ABC': expected 2 columns (owner,number), got 1" in p.stderr
    assert "a.toml:3: fixtures: bad dnc row '0912000001': expected 2 columns (number,channel), got 1" in p.stderr
    assert "a.toml:4: fixtures: bad senders row 'SHOPABC,Shop ABC,QC,,,,extra': expected 6 columns" in p.stderr
    assert p.stderr.count("fixtures: bad") == 3, p.stderr      # the good row is in force: the example hits
    assert p.stderr.splitlines()[-1] == f"telfilter rules check: 3 example or fixture failure(s) in {d}", p.stderr


def test_a_prior_that_is_no_array_of_messages_is_an_error_at_its_line(tmp_path):
    # it ran, and failed as "bad example: 'str' object has no attribute 'get'"
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(RULE + 'prior = "0987000666 said hi"\n[[rule.examples.miss]]\nsender = "0987000667"\n'
                                     'text = "hi"\nprior = [1]\n')
    p = run_cli("rules", "check", d)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [
        f"{d / 'a.toml'}:10:1: examples.hit: prior must be an array of messages (tables), got '0987000666 said hi'",
        f"{d / 'a.toml'}:14:1: examples.miss: prior must be an array of messages (tables), got [1]",
        f"telfilter rules check: 2 error(s) in {d}"], p.stderr


def test_rules_check_names_the_disabled_rules_whose_examples_it_did_not_run(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.toml").write_text(RULE.replace('symbol = "BLACKLISTED"', 'symbol = "BLACKLISTED"\nenabled = false')
                              + '\n[[rule]]\nsymbol = "WORD"\naction = "tag"\n[rule.when]\nkeywords = ["x"]\n')
    p = run_cli("rules", "check", d)
    assert p.returncode == 0, p.stderr
    assert "OK: 1 rules (1 scoring, 0 helpers), 1 disabled (BLACKLISTED: examples not run), 0 examples pass" in p.stdout
