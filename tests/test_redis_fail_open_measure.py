"""`--state redis://…?on_error=open` with the server away: a message whose destinations bring several values to one
distinct counter (a submit_multi from one sender to three recipients, under a drop rule "more than 2 distinct
recipients per sender an hour") is measured as the batch script measures it: each destination sees the values of
the ones before it (redis_script.py `pend`), as the embedded store's in-order judging does. The fail-open re-check
(RedisStore._degraded, _Op.measure) counted a count counter's earlier ops but not a distinct counter's values: the
whole submit_multi went through, and all three recipients were committed to the mirror. A count at delivery's
measure differed from the script's the same way (below)."""
import asyncio
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.state import install, open_state
from engine.verdict import ALLOW_NO_HITS, Message

from .conftest import CONFIG
from .redis_helpers import free_port

ICT = timezone(timedelta(hours=7))
RULE = """
[[rule]]
symbol = "SPRAY_TEST"
description = "one number sending to more than 2 distinct recipients within an hour"
applies_to = ["sms-mt"]
action = "drop"
score = 10.0
[rule.when]
sender_kind = "number"
counter = { key = ["sender"], window = "1h", limit = 2, distinct = "recipient" }
"""


def _config(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-spray-test.toml").write_text(RULE)
    return cfg


def _msg(recipient):
    return Message("0901000123", recipient, "Hen gap lai o nha hang toi nay nhe ban", datetime(2026, 3, 2, 9, 0,
                   tzinfo=ICT), "e", "mt")


RECIPIENTS = ("0912000401", "0912000402", "0912000403")


def test_the_same_submit_multi_is_dropped_by_the_embedded_store(tmp_path):
    """The reference: judged in order and committed, the third recipient is over the cap."""
    pipe = build(_config(tmp_path), tmp_path / "d", with_model=False)
    acts = [pipe.judge(_msg(r)).action.name for r in RECIPIENTS]
    assert acts == ["ALLOW", "ALLOW", "DROP"], acts


def test_a_submit_multi_over_a_distinct_cap_is_dropped_with_the_server_away(tmp_path):
    res = {}

    async def main():
        pipe = build(_config(tmp_path), tmp_path / "d", with_model=False)
        st = open_state(f"redis://127.0.0.1:{free_port()}/0?timeout=0.3&on_error=open", tmp_path / "d")
        install(pipe, st)
        sh = pipe.state.shared
        sh.begin()                              # multi.py's second pass: each destination judged, then one settle
        res["judged"] = [pipe.judge(_msg(r)).action.name for r in RECIPIENTS]
        sh.settle(pipe, ALLOW_NO_HITS, lambda v: res.__setitem__("final", v))
        for _ in range(5000):
            if "final" in res:
                break
            await asyncio.sleep(0.001)
        res["after"] = pipe.judge(_msg("0912000409")).action.name       # nothing of it was counted
        res["fail_open"] = st.stats["fail_open"]
        await st.close()
    asyncio.run(main())
    assert res["judged"] == ["ALLOW"] * 3       # (each against the mirror alone: the batch decides)
    assert res["fail_open"] == 1
    assert res["final"].action.name == "DROP", res
    assert "SPRAY_TEST" in [h.symbol for h in res["final"].hits]
    assert res["after"] == "ALLOW"


def _ops(rnd, mode, clock, window, limit):
    """One message's ops on two keys: distinct values (some repeated), or counts at delivery (some scheduled ahead)."""
    from engine.state.redis_counters import AT, _Op
    n = rnd.choice([1, 2, 3, 4])
    if mode == "distinct":
        return [_Op("RULE|sender", rnd.choice([1, 2]), rnd.choice([11, 12, 13, 14, 15]), clock, window, limit, True)
                for _ in range(n)]
    return [_Op("RULE|owner+recipient", rnd.choice([1, 2]), clock, clock + rnd.choice([0, 0, 3, 50, 200]), window,
                limit, AT) for _ in range(n)]


@pytest.mark.parametrize("mode", ["distinct", "at_delivery"])
def test_the_fail_open_measure_is_the_scripts(tmp_path, mode):
    """Messages of one to four ops on two keys, in the script on a real server and measured against the mirror as the
    fail-open path does: the same counts and the same commit decision. Before, a message's earlier ops on a key were
    not counted by a distinct counter's measure, nor by a count at delivery's test of a row with no room (the script
    gives the limit when the row's live stamps and this message's earlier ops fill it: a submit_multi naming a
    recipient with ads scheduled ahead several times was let through by the mirror, refused by the script)."""
    import random

    import msgpack

    from engine.rules.counters import MemoryCounters
    from engine.rules.slots import value_fp
    from engine.state.redis_counters import AT
    from engine.state.redis_script import LUA, counter_key

    from .redis_helpers import RedisServer
    srv = RedisServer(tmp_path / "redis")
    try:
        r = srv.client()
        script = r.register_script(LUA)
        for trial in range(150):
            r.flushall()
            rnd, mem, clock = random.Random(trial), MemoryCounters(), 1_700_000_000
            limit, window = rnd.choice([1, 2, 3, 5]), rnd.choice([10, 100, 1000])
            for m in range(10):
                clock += rnd.choice([0, 1, 5, 30])
                ops = _ops(rnd, mode, clock, window, limit)
                keys = sorted({counter_key(o.ns, o.key) for o in ops})
                enc = [[keys.index(counter_key(o.ns, o.key)) + 1, 3 if o.distinct is AT else 1, limit, window,
                        int(o.now), 1, int(o.value) if o.distinct is AT else value_fp(o.value)] for o in ops]
                out = script(keys=keys, args=[msgpack.packb([enc]), 60, len(keys), f"t{trial}-{m}"])
                ok, *counts = map(int, out.decode().lstrip("L").split(","))
                pend = {}
                mine = [o.measure(mem, pend) for o in ops]
                assert (mine, not any(o.over(n) for o, n in zip(ops, mine))) == (counts, bool(ok)), (trial, m)
                if ok:
                    for o in ops:
                        o.apply(mem)
        r.close()
    finally:
        srv.stop()
