"""A counter's state is named by what it counts, not by how its key is spelt: a reload that only reorders the key's
parts (`["recipient", "owner"]` for `["owner", "recipient"]`) or repeats one keeps the counts (it started them again:
the flood cap let 3 more through). The shipped pack's namespaces stay as they were."""
import shutil

from engine.config import load_settings
from engine.lists import Lists
from engine.pipeline import Pipeline, RuleWatcher
from engine.records import parse_record
from engine.rules.loader import load_rules

from .conftest import CONFIG

FLOOD = 'key = ["sender", "recipient", "content"], window = "5m", limit = 3'


def _sms(text):
    return parse_record(dict(kind="sms", sender="0901234567", recipient="0912345678", text=text,
                             time="2026-03-02T10:00:00+07:00"))


def test_reordered_key_parts_keep_the_counts(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    p = Pipeline(load_settings(CONFIG), load_rules(d), lists=Lists(), persist=False)
    w = RuleWatcher(p)
    for _ in range(3):
        assert p.judge(_sms("same content")).action.name == "ALLOW"
    f = d / "40-spam-senders.toml"
    f.write_text(f.read_text().replace(FLOOD, 'key = ["content", "recipient", "sender", "sender"], window = "5m", '
                                              'limit = 3'))
    assert w.poll() is False and w.poll() is True and not p.rule_errors    # read once settled
    v = p.judge(_sms("same content"))
    assert v.symbols == ["FLOOD_SAME_CONTENT"], v.symbols
    assert "4 messages per sender+recipient+content within 5m (limit 3)" in v.hits[0].detail


def test_shipped_namespaces_are_unchanged():
    ns = sorted(st.ns for r in load_rules(CONFIG / "rules").rules for st in r.stateful if hasattr(st, "ns"))
    assert ns == ["AD_CALL_FREQUENCY_CAP|owner+recipient|24h|None", "AD_FREQUENCY_CAP|owner+recipient|24h|None",
                  "FLOOD_SAME_CONTENT|sender+recipient+content|5m|None", "SHARED_TEMPLATE|template|1h|sender",
                  "__CALLS_PER_MINUTE|sender|1m|None", "__DKQC_REPEAT|owner+recipient|forever|None",
                  "__VOLUME_HIGH|sender|1h|None"], ns
