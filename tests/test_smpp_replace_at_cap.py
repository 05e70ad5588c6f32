"""A replace_sm does not deliver a message more: it replaces one still waiting at the SMSC (an ad scheduled ahead,
typically). It is judged with the count of the message it replaces left out (Message.replacing: the advertiser
caps counted at delivery leave one stamp of that message's second out of their check; the row keeps it until the
SMSC takes the replacement, relay.py), so a correction of the third ad of the day is no fourth; and it is counted
itself, so a replacement is no way around the caps: a message that was not counted (a care message) replaced by an
ad is one more ad, one moved into a full day is refused there. A replacement the SMSC refuses leaves the ad it
would have replaced counted exactly once. End to end through the proxy and its SMSC simulator, with the embedded
store and with a shared Redis server (tests/redis_helpers.py)."""
import io
import json

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.redis_helpers import redis_server  # noqa: F401 (fixture)
from tests.test_smpp_proxy import raw_session, wait
from tests.test_smpp_refund_smsc_answers import (NOON, SENDERS, TEXT, _ad, _cancel, _replace, _resp, _send,  # noqa: F401
                                                 pipe, refusing)  # (pipe, refusing: fixtures)

TUE_9 = "260303090000028+"         # 2026-03-03 09:00 +07:00: the next morning (NOON is Monday 10:00)
CARE = b"Tai khoan cua quy khach da duoc cap nhat"
BANK = b"sender,owner,category,valid_from,valid_to,accounts\nBANKZ,Bank Z,CSKH,,,\nBANKZ,Bank Z,QC,2020-01-01,2099-12-31,\n"


def _scheduled_ads(s, dst, n=3):
    """`n` ads to `dst` scheduled for Tuesday 09:00, 09:10, ...: their message_ids."""
    mids = [_resp(s, _ad(1 + i, dst, TEXT + b" %d" % i, schedule_delivery_time=f"26030309{i}000028+")).message_id
            for i in range(n)]
    assert all(mids), mids
    return mids


def _replaces(h):
    return [p for _, p in h.sim.received if p.command_id == C.REPLACE_SM]


def _symbols(out):
    return [h["symbol"] for h in json.loads(out.getvalue().splitlines()[-1])["hits"]]


def test_a_correction_of_the_third_ad_is_forwarded_and_a_fourth_ad_still_refused(pipe, refusing):  # noqa: F811
    """Three ads to one recipient for Tuesday morning, the third corrected twice (text, then its schedule within
    the morning): each correction reaches the SMSC (before: refused AD_FREQUENCY_CAP as a fourth ad); a fourth ad
    for Tuesday is still refused, and so is one more correction that would be a fourth if the old counts stayed."""
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOON, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        mids = _scheduled_ads(s, "84912777050")
        assert _send(s, _replace(10, mids[2], TEXT + b" (sua)")) == 0
        assert _send(s, _replace(11, mids[2], TEXT + b" (sua lan 2)", sched="260303093000028+")) == 0
        assert [p.message_id for p in _replaces(h)] == [mids[2]] * 2
        assert _send(s, _ad(12, "84912777050", schedule_delivery_time="260303100000028+")) != 0
        assert "AD_FREQUENCY_CAP" in _symbols(out)
        assert _send(s, _replace(13, mids[0], TEXT + b" (sua)")) == 0          # the first: no fourth either
        assert _send(s, _ad(14, "84912777050", schedule_delivery_time="260303110000028+")) != 0
        assert h.proxy.stats["counts_given_back"] == 3


def test_a_correction_the_smsc_refuses_leaves_the_ad_counted_exactly_once(pipe, refusing):  # noqa: F811
    """The SMSC refuses the correction of the third ad (ESME_RREPLACEFAIL: delivered already, say): the ESME gets
    the SMSC's answer, not the proxy's refusal; the third ad keeps its count, once: a fourth ad is refused, and once
    the third is cancelled exactly one more ad goes (the correction's own count was given back)."""
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = _scheduled_ads(s, "84912777051")
        h.sim.reject = C.ESME_RREPLACEFAIL
        # (the SMSC's answer: the proxy's own refusal of a fourth ad is AD_FREQUENCY_CAP's ESME_RSUBMITFAIL)
        assert _send(s, _replace(10, mids[2], TEXT + b" (sua)")) == C.ESME_RREPLACEFAIL
        h.sim.reject = 0
        assert _send(s, _ad(11, "84912777051", schedule_delivery_time="260303100000028+")) != 0
        assert h.proxy.stats["counts_given_back"] == 0
        assert _send(s, _cancel(12, mids[2])) == 0
        more = [_send(s, _ad(20 + i, "84912777051", schedule_delivery_time="260303100000028+")) for i in range(2)]
        assert more[0] == 0 and more[1] != 0, more


def test_a_second_correction_while_the_first_is_in_flight_is_refused_then_taken(pipe, refusing):  # noqa: F811
    """Two corrections of the third ad sent back to back, the SMSC answering late (the first still in flight when
    the second is judged): the first goes; the second is judged without the third's count but with the first's,
    which counts until the SMSC has answered it (either of them may still be delivered), so it is refused as a
    fourth -- an over-count, never an under-count. Sent again once the first is taken, it goes; the ad keeps one
    count: a fourth ad is refused, and once the ad is cancelled exactly one more goes."""
    from tests.test_smpp_proxy import read_raw
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        mids = _scheduled_ads(s, "84912777056")
        h.sim.answer_delay = 0.2
        s.sendall(_replace(10, mids[2], TEXT + b" (sua)") + _replace(11, mids[2], TEXT + b" (sua lan 2)"))
        got = sorted((r.sequence_number, r.command_status) for r in (read_raw(s), read_raw(s)))
        assert got[0] == (10, 0) and got[1][1] not in (0, C.ESME_RREPLACEFAIL), got
        h.sim.answer_delay = 0
        assert _send(s, _replace(12, mids[2], TEXT + b" (sua lan 2)")) == 0
        assert _send(s, _ad(13, "84912777056", schedule_delivery_time="260303100000028+")) != 0
        assert h.proxy.stats["counts_given_back"] == 2
        assert _send(s, _cancel(14, mids[2])) == 0
        more = [_send(s, _ad(20 + i, "84912777056", schedule_delivery_time="260303100000028+")) for i in range(2)]
        assert more[0] == 0 and more[1] != 0, more


@pytest.fixture
def bank(tmp_path):
    """A pipeline whose sender BANKZ is registered for care messages (CSKH) and for ads (QC): its care text is
    no ad, its [QC] text is."""
    d = tmp_path / "bank"
    ListStore(d).import_csv("senders", BANK, "senders.csv")
    return build(data_dir=d, with_model=False)


def test_a_care_message_replaced_by_an_ad_at_the_cap_is_refused(bank, refusing):  # noqa: F811
    """A care message (no count toward the cap) replaced by an ad is one ad more: refused AD_FREQUENCY_CAP when
    the advertiser's three are there, and not relayed; below the cap it goes, and counts."""
    out = io.StringIO()
    with ProxyHarness(bank, clock=lambda: NOON, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)

        def send(seq, dst, text, sched):
            return _resp(s, encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="BANKZ",
                                              dest_addr_ton=1, destination_addr=dst, data_coding=1,
                                              schedule_delivery_time=sched, short_message=text)))

        def as_ad(seq, mid):
            return _send(s, encode(P.ReplaceSm(sequence_number=seq, message_id=mid, source_addr_ton=5,
                                               source_addr="BANKZ", short_message=TEXT + b" (moi)")))
        for i in range(3):
            assert send(1 + i, "84912777052", TEXT, f"26030309{i}000028+").command_status == 0
        mid = send(5, "84912777052", CARE, TUE_9).message_id
        assert mid
        assert as_ad(6, mid) != 0 and not _replaces(h)
        assert "AD_FREQUENCY_CAP" in _symbols(out)
        for i in range(2):
            assert send(10 + i, "84912777053", TEXT, f"26030309{i}000028+").command_status == 0
        mid = send(12, "84912777053", CARE, TUE_9).message_id
        assert as_ad(13, mid) == 0 and len(_replaces(h)) == 1
        assert send(14, "84912777053", TEXT, "260303100000028+").command_status != 0        # it counts


def test_a_correction_that_moves_an_ad_into_a_full_day_is_refused(pipe, refusing):  # noqa: F811
    """The count left out is the replaced ad's own, at its own second: a correction that moves Tuesday's ad to
    Wednesday, which has its three already, is refused there, and Tuesday keeps it."""
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        tue = _resp(s, _ad(1, "84912777054", schedule_delivery_time=TUE_9)).message_id
        wed = [_send(s, _ad(2 + i, "84912777054", schedule_delivery_time=f"26030409{i}000028+")) for i in range(3)]
        assert tue and wed == [0, 0, 0]
        assert _send(s, _replace(10, tue, sched="260304120000028+")) != 0
        assert _send(s, _replace(11, tue, sched="260303083000028+")) == 0            # earlier on Tuesday: taken
        assert len(_replaces(h)) == 1


# ---------------------------------------------------------------- a shared Redis server
def _on_redis(tmp_path, url):
    from engine.state import install
    from engine.state.redis_store import RedisStore
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    p = build(data_dir=d, with_model=False)
    h = ProxyHarness(p, clock=lambda: NOON).start()

    async def setup():
        install(p, RedisStore(url))
    h.call(setup())
    return h


def _server_stamps(url):
    """The stamps the server's counter rows hold, all keys together (little-endian uint32 each)."""
    import redis
    r = redis.Redis.from_url(url)
    return sum(len(v) // 4 for v in (r.get(k) for k in r.scan_iter("tf:c:*")) if v)


def test_a_correction_of_the_third_ad_on_the_shared_store(tmp_path, refusing, redis_server):  # noqa: F811
    """As above with `--state redis://`: the server's batch script measures the correction without the replaced
    ad's stamp too (the mirror alone letting it through, the server refused it as a fourth); the SMSC taking it,
    the server holds three stamps again; one it refuses leaves them as they were."""
    redis_server.flush()
    h = _on_redis(tmp_path, redis_server.url)
    try:
        s, _ = raw_session(h)
        mids = _scheduled_ads(s, "84912777055")
        assert _send(s, _replace(10, mids[2], TEXT + b" (sua)")) == 0
        assert len(_replaces(h)) == 1
        assert _send(s, _ad(11, "84912777055", schedule_delivery_time="260303100000028+")) != 0
        assert wait(lambda: _server_stamps(redis_server.url) == 3), _server_stamps(redis_server.url)
        h.sim.reject = C.ESME_RREPLACEFAIL
        assert _send(s, _replace(12, mids[1], TEXT + b" (sua)")) == C.ESME_RREPLACEFAIL
        h.sim.reject = 0
        assert _send(s, _ad(13, "84912777055", schedule_delivery_time="260303100000028+")) != 0
        assert wait(lambda: _server_stamps(redis_server.url) == 3), _server_stamps(redis_server.url)
        assert h.proxy.stats["counts_given_back"] == 1
    finally:
        h.stop()
