"""A SIP screen's UDP socket under a flood, simulated on a fake clock (no socket, no scheduler): the kernel's
receive buffer is a bounded queue that drops what does not fit, whoever sent it; the screen reads it in rounds of
PUMP_BATCH and says it is behind as the pump does (since when every round read a whole batch: _sippump.h, transport.py);
each datagram costs the screen a fixed time on the fake clock, less when the shares drop it unread. The figures are
the same on every run and every host: what the shares decide, not what the scheduler does (benchmarks/sip_flood.py
measures that on real sockets)."""
from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from engine.app import build
from engine.sip_screen import server
from engine.sip_screen.transport import PUMP_BATCH

from .sip_helpers import invite, offline_screen

FLOODER, CALLER = ("127.0.0.2", 5080), ("127.0.0.3", 5080)


def arrivals(seconds, flood_rate, rate, then=None):
    """(time, source, INVITE) in time order: a flood of `flood_rate` a second from FLOODER, `rate` a second from
    CALLER (half a period late, so the two never tie), each a new call; `then` (seconds, rate): FLOODER goes on at
    that rate for that long after the flood (CALLER too)."""
    flood = [(k / flood_rate, FLOODER, f"f{k}") for k in range(int(seconds * flood_rate))]
    if then is not None:
        more, after_rate = then
        flood += [(seconds + k / after_rate, FLOODER, f"a{k}") for k in range(int(more * after_rate))]
        seconds += more
    calls = [((j + 0.5) / rate, CALLER, f"mine-{j}") for j in range(int(seconds * rate))]
    return sorted(flood + calls, key=lambda a: a[0])


def flood_through(monkeypatch, overload_after, seconds=3.0, flood_rate=4000, rate=20, buffer=256,
                  judge_cost=1e-3, drop_cost=1e-5, then=None, flood=None) -> dict:
    """Per source: INVITEs sent, lost in the queue (kernel drops), dropped unread by the screen, judged (the screen
    answered or forwarded them); `last_drop`: the time of the last one dropped unread (-1: none). `flood`: what
    FLOODER sends, flood(call_id, port) -> bytes (default: INVITEs; a MESSAGE costs as much to judge)."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(server, "time", SimpleNamespace(monotonic=lambda: clock.now))
    scr = offline_screen(build(with_model=False, persist=False), overload_after=overload_after)
    out = {src: dict(sent=0, lost=0, dropped_unread=0, judged=0) for src in (FLOODER[0], CALLER[0])}
    todo, queue, full_since = deque(arrivals(seconds, flood_rate, rate, then)), deque(), 0.0
    last_drop = -1.0

    def arrive():                                   # everything sent by now, into the queue or lost
        while todo and todo[0][0] <= clock.now:
            _, src, call_id = todo.popleft()
            out[src[0]]["sent"] += 1
            if len(queue) < buffer:
                make = flood if flood is not None and src == FLOODER else invite
                queue.append((make(call_id=call_id, via_port=src[1]), src))
            else:
                out[src[0]]["lost"] += 1
    while todo or queue:
        arrive()
        if not queue:
            clock.now = todo[0][0]
            continue
        got = [queue.popleft() for _ in range(min(PUMP_BATCH, len(queue)))]
        if len(got) < PUMP_BATCH:                   # the queue found empty: not behind
            full_since = 0.0
        elif not full_since:
            full_since = clock.now
        scr.udp.behind = full_since
        for data, src in got:
            dropped, sent = scr.stats["overload_source_dropped"], len(scr.udp.out)
            scr.on_datagram(data, src)
            if scr.stats["overload_source_dropped"] > dropped:
                out[src[0]]["dropped_unread"] += 1
                last_drop = clock.now
                clock.now += drop_cost
            else:
                assert len(scr.udp.out) > sent, "an INVITE read and neither answered nor forwarded"
                out[src[0]]["judged"] += 1
                clock.now += judge_cost
            scr.udp.out.clear()
            arrive()
    return {"flooder": out[FLOODER[0]], "caller": out[CALLER[0]], "last_drop": last_drop}
