"""`short_call_share` asks for no more than the call-duration table keeps: the last 32 completed calls of a caller,
for a day after its last one. `min_calls = 50` loaded and never held; `window = "7d"` loaded and counted only the
calls of a caller never quiet for a day. Both are errors at their line, said together."""
import pytest

from engine.rules.history import CALLS_KEPT, CALLS_KEPT_FOR, CallDurations
from engine.rules.loader import RuleSetError, load_rules

RULE = ('[[rule]]\nsymbol = "ROBOCALLS"\naction = "tag"\napplies_to = ["call"]\n[rule.when]\n'
        'short_call_share = {{ min_calls = {}, window = "{}", max_seconds = 10, above = 0.7 }}\n')


def test_more_than_the_table_keeps_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text(RULE.format(50, "7d"))
    with pytest.raises(RuleSetError) as e:
        load_rules(tmp_path)
    assert [str(x).split("a.toml:", 1)[1] for x in e.value.errors] == [
        "6:20: short_call_share: min_calls 50 is over the 32 completed calls kept per caller: it would never hold; "
        "window '7d' is over the 24h a caller's calls are kept after their last one: it would count only part of it"]


@pytest.mark.parametrize("n, window", [(32, "24h"), (10, "1h"), (1, "1d")])
def test_within_it_loads(tmp_path, n, window):
    (tmp_path / "a.toml").write_text(RULE.format(n, window))
    assert [r.symbol for r in load_rules(tmp_path).rules] == ["ROBOCALLS"]


def test_the_bounds_are_the_table_s_own():
    d = CallDurations(max_callers=16)
    for i in range(CALLS_KEPT + 10):
        d.add("0901234567", 1000.0 + i, 3.0)
    assert d.share_short("0901234567", 1000.0 + CALLS_KEPT + 10, 3600, 10) == (CALLS_KEPT, 1.0)
    assert d.table.keep == CALLS_KEPT_FOR
