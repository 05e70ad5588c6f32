"""The host's clock stepped (an NTP step, an operator's `date -s`) while serve runs: what measures an age or a
duration within one process goes by the monotonic clock, so a step neither ages nor rejuvenates it (found by
the clock-step probe)."""
import time
import types

from engine.smpp_proxy import held
from engine.smpp_proxy.codec import pdu as P
from tests.test_held_receipts_journal import _held, _statuses
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme


def _wall_stepped(monkeypatch, seconds: float):
    """held.py's view of the time module with the wall clock stepped by `seconds` (monotonic untouched)."""
    monkeypatch.setattr(held, "time", types.SimpleNamespace(time=lambda: time.time() + seconds,
                                                            monotonic=time.monotonic))


def test_a_step_forward_of_the_wall_clock_does_not_let_held_receipts_go(pipe, tmp_path, monkeypatch):
    """Receipts held a moment ago, then the clock stepped forward by 30 days (a host that started with a stale
    clock, then NTP): they were let go at the next housekeeping as held longer than max_held_days (3), lost to
    their ESME though held for seconds."""
    h, _journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)                      # no receiver: receipts are held
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0]) and h.proxy.held_total == 2
        _wall_stepped(monkeypatch, 30 * 86400.0)
        h.run(lambda: h.proxy._retry_held(time.monotonic()))     # the housekeeping's pass (every second)
        assert h.proxy.stats["receipts_held_expired"] == 0 and h.proxy.held_total == 2
    finally:
        h.stop()


def test_held_receipts_still_go_after_max_held_days_on_the_monotonic_clock(pipe, tmp_path, monkeypatch):
    """A step back of the wall clock does not keep a receipt past max_held_days either."""
    h, _journal = _held(pipe, tmp_path)
    try:
        e = Esme(h, kind=P.BindTransmitter)
        e.submit(2)
        assert wait(lambda: _statuses(h) == [0, 0]) and h.proxy.held_total == 2
        _wall_stepped(monkeypatch, -86400.0)
        h.proxy.settings.max_held_days = 1 / 86400               # 1 s
        assert wait(lambda: h.proxy.held_total == 0 and h.proxy.stats["receipts_held_expired"] == 2, 5)
    finally:
        h.stop()


# ------------------------------------------------------------ SIP: a call's duration
from datetime import datetime, timedelta, timezone  # noqa: E402

import pytest  # noqa: E402

from tests.test_sip_answer_origin import WAYS, Way  # noqa: E402


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("step", [-3600.0, 86400.0])
def test_a_step_of_the_wall_clock_during_a_call_does_not_change_its_duration(pipe, way, step, monkeypatch):
    """A call answered, the wall clock stepped (back 1 h, forward 1 day), 30 s later its BYE: it lasted 30 s.
    Its duration was the wall clock's difference: -3570 s (read as 0 s, a short call: a call centre with calls
    up across a step back was taken for a robocaller by short_call_share) or 86430 s (a robocaller's short calls
    read as long ones)."""
    w = Way(pipe, way, monkeypatch)
    ticks = [1000.0]
    w.scr.ticks = lambda: ticks[0]                               # the monotonic clock, which no step moves
    fwd = w.call("stepped-1")
    w.respond(fwd, 200, ("127.0.0.1", 5071))                     # the next hop's answer: the call starts
    w.now += timedelta(seconds=step)
    w.now, ticks[0] = w.now + timedelta(seconds=30), ticks[0] + 30
    ((bye, _),) = w.in_dialog("BYE", "stepped-1", 2)
    assert bye.method == "BYE" and w.durations == [("0901234567", 30.0)]


def test_a_screen_on_the_wall_clock_times_calls_by_the_monotonic_clock(pipe, monkeypatch):
    from engine.sip_screen import dialogs
    from tests.sip_helpers import offline_screen
    scr = offline_screen(pipe)
    monkeypatch.setattr(dialogs, "time", types.SimpleNamespace(monotonic=lambda: 42.0))
    assert scr.clock is dialogs.wall_clock and scr.call_ticks() == 42.0


# ------------------------------------------------------------ 5656 parts read back after a step back
def test_parts_read_back_after_a_step_back_wait_no_longer_than_an_hour(pipe, tmp_path):
    """A 5656 report's first part acknowledged, serve restarted with the clock stepped back a day (its record's
    time a day ahead): the part waited for the rest until NOT_RECORDED_KEEP after its time on the wall clock,
    25 h instead of at most 1 h (a done marker's wait was bounded so already)."""
    from engine.app import build
    from engine.smpp_proxy.accounts import SmppSettings
    from engine.smpp_proxy.harness import ProxyHarness
    from engine.smpp_proxy.heldjournal import HeldJournal
    from engine.smpp_proxy.mo import NOT_RECORDED_KEEP
    from tests.test_mo_parts_journal import _journalled
    from tests.test_smpp_mo_concat import REPORT, answers, deliver, mo, ucs2_parts
    import json
    p1, _p2 = ucs2_parts(REPORT, ref=0x71)
    h, path = _journalled(pipe, tmp_path, concat_timeout=0.5)
    try:
        s = deliver(h, mo(p1))
        assert wait(lambda: answers(h).get(s) == [0])
    finally:
        h.stop()
    recs = []
    for i, (owner, raw) in enumerate(HeldJournal(path).replay()):
        o = json.loads(owner)
        o[8] += 86400.0                                  # written a day "ahead": the clock went back a day since
        recs.append((i + 1, json.dumps(o), raw))
    HeldJournal(path).rewrite(recs)
    pipe2 = build(data_dir=pipe.store.dir)
    h2 = ProxyHarness(pipe2, settings=SmppSettings(concat_timeout=0.5)).start()
    try:
        delays, later = [], h2.proxy.loop.call_later
        h2.proxy.loop.call_later = lambda d, *a: (delays.append(d), later(d, *a))[1]
        h2.run(lambda: h2.proxy.open_mo_parts(path, h2.proxy.loop))
        h2.run(h2.proxy._restore_mo_parts)
        del h2.proxy.loop.call_later
        assert delays and max(delays) <= NOT_RECORDED_KEEP
    finally:
        h2.stop()


# ------------------------------------------------------------ Redis streams: trimmed on the server's clock
from .redis_helpers import redis_server  # noqa: E402,F401


def _stepped_streams(monkeypatch, seconds: float):
    """The shared streams' modules with this process's wall clock stepped by `seconds` (the server's is not)."""
    from engine.state import events, receipts
    fake = types.SimpleNamespace(time=lambda: time.time() + seconds, monotonic=time.monotonic)
    monkeypatch.setattr(events, "time", fake)
    monkeypatch.setattr(receipts, "time", fake)


@pytest.mark.parametrize("path", ["batch", "alone"])
def test_a_process_whose_clock_is_a_day_ahead_still_publishes_and_trims_nothing_young(tmp_path, redis_server,  # noqa: F811
                                                                                      monkeypatch, path):
    """A process whose wall clock is a day ahead of the server's (a step forward on its host): its MINID (its
    clock less KEEP) trimmed the stream whole at each XADD, its own new entry too -- the other processes never
    saw its history and call-duration updates (nor its message ids: their receipts found no account), and a
    process starting read nothing."""
    import asyncio
    from engine.numbers import sender_key
    from tests.redis_state_helpers import _node
    redis_server.flush()
    url = redis_server.url
    c = redis_server.client()
    for i in range(300):                                         # another process's updates of the last minutes
        c.xadd("tf:ev", {"p": "other", "d": b"\x90"})
    _stepped_streams(monkeypatch, 86400.0)

    async def main():
        a, sa = _node(tmp_path, "a", url)
        await sa.start()
        task = asyncio.ensure_future(sa.run())
        if path == "alone":
            sa.events.carrier = None                             # (the updates not riding a batch: events._send)
        a.call_ended("0912000321", datetime.now(timezone.utc), 3.0)
        end = asyncio.get_running_loop().time() + 3
        while c.xlen("tf:ev") < 301 and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.02)
        assert c.xlen("tf:ev") == 301                            # its entry, and the others' young ones, kept
        b, sb = _node(tmp_path, "b", url)                        # a process starting now reads it back
        await sb.start()
        assert len(b.state.calls.recent(sender_key("0912000321"))) == 1
        task.cancel()
        await sa.close()
        await sb.close()
    asyncio.run(main())


def test_a_process_whose_clock_is_a_day_behind_still_trims_the_stream(tmp_path, redis_server, monkeypatch):  # noqa: F811
    """A process whose wall clock went back a day: its MINID (its clock less KEEP) trimmed nothing, so the stream
    kept a day of updates instead of an hour (of message ids: a day instead of 2 minutes, ~6 GB at 5k/s)."""
    import asyncio
    from tests.redis_state_helpers import _node
    redis_server.flush()
    url = redis_server.url
    c = redis_server.client()
    old = int((time.time() - 2 * 3600) * 1000)
    for i in range(300):                                         # updates two hours old: out of KEEP (1 h)
        c.xadd("tf:ev", {"p": "other", "d": b"\x90"}, id=f"{old + i}-0")
    _stepped_streams(monkeypatch, -86400.0)

    async def main():
        a, sa = _node(tmp_path, "a", url)
        await sa.start()
        task = asyncio.ensure_future(sa.run())
        a.call_ended("0912000321", datetime.now(timezone.utc), 3.0)
        end = asyncio.get_running_loop().time() + 3
        while c.xlen("tf:ev") > 250 and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.02)
        assert c.xlen("tf:ev") < 100                             # (trimmed by whole nodes: '~')
        task.cancel()
        await sa.close()
    asyncio.run(main())
