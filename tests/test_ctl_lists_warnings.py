"""`ctl lists` answers the warnings of the lists it read for the change, and `telfilter ctl` prints them: a DNC change
reads none (it is journalled), so it said serve's start-up warnings again, on every change, long after they held (a
journal line since moved out by a fold, named as if still there)."""
import asyncio

from engine.app import build
from engine.control_lists import ListCommands
from engine.lists import ListStore


class _Ctl(ListCommands):
    def __init__(self, pipe):
        self.pipe, self.vlog = pipe, None


def test_a_dnc_change_does_not_repeat_the_start_warnings(tmp_path):
    d = tmp_path / "data"
    s = ListStore(d)
    s.add("dnc", "0912000001", "SV")
    s.append_delta("add", 84912000002, "SV")
    with open(s.delta_path, "ab") as f:
        f.write(b"garbage line\n")
    pipe = build(None, d, with_model=False)
    assert any("unreadable DNC journal line" in w for w in pipe.store.warnings)      # (said at the start)
    assert ListStore(d).compact_journal(min_bytes=0)        # the bad line moved out since
    ans = asyncio.run(_Ctl(pipe).lists({"op": "add", "kind": "dnc", "value": "0912000003"}))
    assert ans["ok"] and "warnings" not in ans, ans
    assert pipe.lists.in_dnc(84912000003, "S")
    # a change that reads its list answers that read's warnings (none here)
    ans = asyncio.run(_Ctl(pipe).lists({"op": "add", "kind": "blacklist", "value": "spam.example"}))
    assert ans["ok"] and "warnings" not in ans, ans
