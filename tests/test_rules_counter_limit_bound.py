"""A counter keeps one stamp (or fingerprint) per key for each message up to its limit, so a mistyped limit is a
memory bomb: `limit = 1000000000` was accepted, and one `check` of one message then took 9 s and 4 GB (found by a
rule-file probe). A limit over counters.MAX_LIMIT is refused at its line; the pack's and reasonable ones load."""
import pytest

from engine.rules.loader import RuleSetError, load_rules
from engine.rules.stateful import MAX_LIMIT

RULE = '''
[[rule]]
symbol = "VOLUME"
score = 1.0
[rule.when]
counter = {{ key = ["sender"], window = "24h", limit = {limit} }}
'''


@pytest.mark.parametrize("limit", [1, 30, MAX_LIMIT])
def test_reasonable_limits_load(tmp_path, limit):
    (tmp_path / "a.toml").write_text(RULE.format(limit=limit))
    assert load_rules(tmp_path).by_symbol["VOLUME"]


@pytest.mark.parametrize("limit", [MAX_LIMIT + 1, 1_000_000_000])
def test_a_limit_past_the_bound_is_refused_at_its_line(tmp_path, limit):
    (tmp_path / "a.toml").write_text(RULE.format(limit=limit))
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    msg = str(e.value.errors[0])
    assert msg.startswith("a.toml:6:") or ":6:" in msg, msg
    assert f"counter limit {limit} is over 10,000" in msg and "count a shorter window" in msg


@pytest.mark.parametrize("limit,size", [(MAX_LIMIT + 1, "39 KiB a key"), (20_000, "78 KiB a key"),
                                        (1_000_000_000, "3,815 MiB a key")])
def test_the_refusal_says_a_keys_size_in_a_unit_it_shows_in(tmp_path, limit, size):
    """Every limit just past the bound was said to cost "0 MiB a key here" (a stamp is 4 bytes: under 1 MiB up to
    262,144), which reads as "nothing" (found by the README audit, stop 49)."""
    (tmp_path / "a.toml").write_text(RULE.format(limit=limit))
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    msg = str(e.value.errors[0])
    assert f"({size} here)" in msg and "(0 MiB" not in msg, msg
