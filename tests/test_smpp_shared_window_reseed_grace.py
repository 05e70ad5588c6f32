"""A Redis that lost its keys starts a re-seed grace (engine/state/redis_reseed.py): a message with an op of an
enforced cap (an ad; with the shipped pack any message from a number, FLOOD_SAME_CONTENT) is held until the other
processes have put their counts back, up to 5 s. Held, it kept the SMSC window slot it took when judged
(submit.py `_link_to_judge`), so once a window's worth was held everything else was answered ESME_RTHROTTLED for the
whole grace (a probe: window 10, 100 submit_sm/s, a FLUSHALL: 31 of the 40 OTPs of the 1 s grace throttled). A
held message now gives its slot back and, at the grace's end, waits for a free one before it is sent again
(engine/smpp_proxy/submit_grace.py): nothing judged is then throttled for want of a slot."""
import json
import socket

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.redis_helpers import redis_server  # noqa: F401 (fixture)
from tests.redis_state_helpers import SENDERS, T0
from tests.test_smpp_proxy import raw_session, read_raw, wait


def _ad(seq, i):
    return encode(P.SubmitSm(sequence_number=seq, source_addr="SHOPABC", destination_addr="0912000%03d" % i,
                             data_coding=3, short_message=b"[QC] Uu dai %d. Tu choi: TC gui 5656" % i))


def _otp(seq, i):
    return encode(P.SubmitSm(sequence_number=seq, source_addr="BANKX", destination_addr="0913000%03d" % i,
                             short_message=b"Ma xac thuc cua ban la %06d" % i))


def _proxy(tmp_path, redis_server):  # noqa: F811
    """A proxy (SMSC window 4) on a Redis store, and its verdict log; the server's keys flushed once it runs."""
    from engine.state import install
    from engine.state.redis_store import RedisStore
    redis_server.flush()
    data = tmp_path / "data"
    ListStore(data).import_csv("senders", SENDERS + b"BANKX,Bank X,CSKH,2020-01-01,,\n", "senders.csv")
    log = tmp_path / "verdicts.jsonl"
    pipe = build(data_dir=data, with_model=False)
    # (at 09:00 in Vietnam: from 22:00 the ads were dropped AD_OUTSIDE_HOURS, never held, and both tests failed)
    h = ProxyHarness(pipe, settings=SmppSettings(smsc_window=4), verdict_log=VerdictLog(open(log, "w")),
                     receipt_delay=None, clock=lambda: T0).start()
    store = RedisStore(redis_server.url)

    async def setup():
        install(pipe, store)
        await store.start()
    h.call(setup())
    redis_server.flush()                # (the keyspace lost under the running proxy)
    return h, store, log


def _answers(s, n):
    got = []
    s.settimeout(10)
    while len(got) < n:
        try:
            r = read_raw(s)
        except socket.timeout:
            break
        got.append((r.sequence_number, r.command_status))
    return got


def _lines(log):
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]


def test_held_ads_leave_the_window_to_other_traffic_during_the_grace(tmp_path, redis_server):  # noqa: F811
    h, store, log = _proxy(tmp_path, redis_server)
    try:
        s, _ = raw_session(h)
        s.sendall(b"".join(_ad(10 + i, i) for i in range(4)))          # a window's worth, held by the grace
        assert wait(lambda: store.stats["reseed_waits"] >= 4, 5)
        s.sendall(_otp(20, 0))
        first = _answers(s, 1)
        assert first == [(20, 0)], first                    # before: ESME_RTHROTTLED, the 4 held had the window
        assert store.stats["reseed_waits"] >= 4 and h.proxy.grace_held == 4     # (the ads still held then)
        rest = _answers(s, 4)
        assert sorted(rest) == [(10 + i, 0) for i in range(4)], rest            # each ad answered once, sent
        assert wait(lambda: len(h.sim.submits()) == 5, 5) and wait(lambda: len(_lines(log)) >= 5, 5)
        assert len(_lines(log)) == 5                        # a verdict line each, for messages sent
        assert h.proxy.settling == 0 and h.proxy.grace_held == 0
    finally:
        h.stop()


def test_ads_released_at_the_grace_end_wait_for_a_free_slot(tmp_path, redis_server):  # noqa: F811
    """The windows full when the grace ends: the held ads are sent again as slots free, ahead of new messages
    (throttled unjudged meanwhile), never judged and then throttled for want of a slot."""
    h, store, log = _proxy(tmp_path, redis_server)
    try:
        s, _ = raw_session(h)
        h.sim.stall = True                              # the SMSC keeps what it is sent unanswered
        s.sendall(b"".join(_ad(10 + i, i) for i in range(4)))
        assert wait(lambda: store.stats["reseed_waits"] >= 4, 5)
        s.sendall(b"".join(_otp(20 + i, i) for i in range(4)))          # the window filled while the ads are held
        assert wait(lambda: len(h.sim.held) == 4, 5)
        assert wait(lambda: len(h.proxy.grace_ready) == 4, 8)          # the grace over: the ads wait for slots
        s.sendall(_otp(30, 9))
        assert _answers(s, 1) == [(30, C.ESME_RTHROTTLED)]             # unjudged: the released ads go first
        h.sim.answer_held()
        assert sorted(_answers(s, 4)) == [(20 + i, 0) for i in range(4)]
        assert wait(lambda: len(h.sim.held) == 4, 5)                    # the 4 ads in the window now
        h.sim.answer_held()
        assert sorted(_answers(s, 4)) == [(10 + i, 0) for i in range(4)]
        assert wait(lambda: len(_lines(log)) >= 8, 5)
        lines = _lines(log)
        assert len(lines) == 8 and sorted(x["sender"] for x in lines) == ["BANKX"] * 4 + ["SHOPABC"] * 4, lines
        assert h.proxy.stats["forwarded"] == 8 and h.proxy.settling == 0 and h.proxy.grace_held == 0
    finally:
        h.stop()
