"""A rule example's `time` written as a TOML date-time (`time = 2026-03-02T23:00:00+07:00`, unquoted: TOML's own
type, what an engineer writes in a TOML file) failed with "time must be an ISO-8601 string with an offset or Z",
which it is. It is read as the instant it names; one without an offset is refused for that, as a string is."""
from engine.config import load_settings
from engine.rules.loader import load_rules
from engine.ruletools.examples import run_examples

RULE = '''[[rule]]
symbol = "AT_NIGHT"
score = 1.0
[rule.when]
local_time_outside = "07:00-22:00"
[[rule.examples.hit]]
time = %s
[[rule.examples.miss]]
time = 2026-03-02T10:00:00+07:00
prior = [{ time = 2026-03-02T09:00:00Z }]
'''


def _run(tmp_path, when):
    (tmp_path / "a.toml").write_text(RULE % when)
    return run_examples(load_rules(tmp_path), load_settings(None))


def test_toml_date_times_are_read_as_their_instant(tmp_path):
    assert _run(tmp_path, "2026-03-02T23:00:00+07:00") == (2, [])
    n, failures = _run(tmp_path, "2026-03-02T10:00:00Z")          # 17:00 in Hanoi: not at night
    assert n == 2 and [f.message for f in failures] == [
        "example must hit but missed (verdict []; local_time_outside does not hold)"]


def test_a_toml_date_time_without_offset_is_refused_for_that(tmp_path):
    n, failures = _run(tmp_path, "2026-03-02T23:00:00")
    assert [f.message for f in failures] == ["bad example: time '2026-03-02T23:00:00' has no offset: add Z or +07:00"]
