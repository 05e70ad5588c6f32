"""Decree 91 on the live SMPP submit path (ESME -> proxy -> SMSC simulator, 127.0.0.1): a submit_multi is
decided whole, a scheduled ad is judged at its delivery, a replace_sm is judged as the message it becomes
(more cases in tests/test_smpp_schedule.py and tests/test_smpp_replace.py; an ad the SMSC refused after
telfilter let it through: tests/test_smpp_refund_smsc_answers.py)."""
from datetime import datetime

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.redis_helpers import redis_server  # noqa: F401 (fixture)
from tests.test_smpp_proxy import raw_session, read_raw

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
DNC = b"number,channel\n0912000001,S\n"
NOON = datetime.fromisoformat("2026-03-02T10:00:00+07:00")     # inside 07:00-22:00


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("senders", SENDERS, "senders.csv")
    st.import_csv("dnc", DNC, "dnc.csv")
    return build(data_dir=d, with_model=False)


def _ad(seq, dst, text=b"[QC] Uu dai. TC gui 5656"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, short_message=text))


def _multi(seq, dests, text=b"[QC] Uu dai. TC gui 5656"):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                dest_addresses=tuple((1, 1, 1, d) for d in dests), data_coding=1,
                                short_message=text))


def test_a_dropped_submit_multi_does_not_charge_the_cap_of_its_other_destinations(pipe):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        for i in range(3):      # 0912000001 is DNC S: every one of these PDUs is dropped whole
            s.sendall(_multi(10 + i, ["84912777001", "0912000001"]))
            assert read_raw(s).command_status != 0
        # nothing reached 84912777001: its first ad is allowed (README: only messages let through count)
        s.sendall(_ad(20, "84912777001"))
        assert read_raw(s).command_status == 0


def test_a_dropped_submit_multi_logs_each_destination_truthfully_and_an_allowed_one_counts(pipe):
    import io
    import json
    from engine.verdictlog import VerdictLog
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOON, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        s.sendall(_multi(10, ["84912777011", "0912000001"]))
        assert read_raw(s).command_status != 0
        other, dnc = [json.loads(x) for x in out.getvalue().splitlines()]
        # the DNC destination with its own reason; the other was not sent: dropped, saying why, never "allow"
        assert dnc["action"] == "drop" and "AD_TO_DNC" in [x["symbol"] for x in dnc["hits"]]
        assert other["action"] == "drop" and other["recipient"] == "84912777011"
        pdu_dropped = [x for x in other["hits"] if x["symbol"] == "PDU_DROPPED"]
        assert pdu_dropped and "'0912000001': AD_TO_DNC" in pdu_dropped[0]["detail"]
        assert h.proxy.stats["verdict_drop"] == 2 and h.proxy.stats["verdict_allow"] == 0
        # three forwarded submit_multi count toward each destination's cap (the dropped one did not)
        for i in range(3):
            s.sendall(_multi(20 + i, ["84912777011", "84912777012"]))
            assert read_raw(s).command_status == 0
        s.sendall(_ad(30, "84912777011"))
        assert read_raw(s).command_status != 0              # the 4th ad within 24 h: AD_FREQUENCY_CAP
        # a number listed four times in one submit_multi is four ads to it: the PDU goes over the cap by itself
        s.sendall(_multi(31, ["84912777013"] * 4))
        assert read_raw(s).command_status != 0
        assert len(h.sim.submits()) == 3


LATE = datetime.fromisoformat("2026-03-02T21:00:00+07:00")     # inside 07:00-22:00


def test_an_ad_scheduled_for_delivery_outside_hours_is_not_forwarded(pipe):
    with ProxyHarness(pipe, clock=lambda: LATE) as h:
        s, _ = raw_session(h)
        # SMPP 3.4 §7.1.1 absolute time: YYMMDDhhmmsstnnp, p '+' quarter-hours ahead of UTC (28 = +07:00)
        s.sendall(encode(P.SubmitSm(sequence_number=5, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                                    destination_addr="84912777003", data_coding=1,
                                    schedule_delivery_time="260302233000028+",
                                    short_message=b"[QC] Uu dai dem khuya. TC gui 5656")))
        st = read_raw(s).command_status
        fwd = [p for p in h.sim.submits() if p.destination_addr == "84912777003"]
        assert st != 0 and not fwd, f"status {st:#x}; forwarded with schedule {fwd[0].schedule_delivery_time!r}"


def test_replace_sm_cannot_turn_a_message_to_a_dnc_number_into_an_ad(tmp_path):
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("senders", SENDERS + b"BANKZ,Bank Z,CSKH,,,\nBANKZ,Bank Z,QC,2020-01-01,2099-12-31,\n", "s.csv")
    st.import_csv("dnc", DNC, "dnc.csv")
    pipe = build(data_dir=d, with_model=False)
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        # customer care (unlabelled, from a brand holding QC and CSKH) to a DNC S number: allowed
        s.sendall(encode(P.SubmitSm(sequence_number=5, source_addr_ton=5, source_addr="BANKZ", dest_addr_ton=1,
                                    destination_addr="0912000001", data_coding=1,
                                    schedule_delivery_time="260302110000028+",
                                    short_message=b"So du tai khoan cua quy khach thay doi")))
        r = read_raw(s)
        assert r.command_status == 0
        # the same ad submitted directly is dropped (AD_TO_DNC) ...
        s.sendall(encode(P.SubmitSm(sequence_number=6, source_addr_ton=5, source_addr="BANKZ", dest_addr_ton=1,
                                    destination_addr="0912000001", data_coding=1,
                                    short_message=b"[QC] Mo the tin dung. TC gui 5656")))
        assert read_raw(s).command_status != 0
        # ... but replacing the stored customer-care message's text with it is relayed to the SMSC
        s.sendall(encode(P.ReplaceSm(sequence_number=7, message_id=r.message_id, source_addr_ton=5,
                                     source_addr="BANKZ", short_message=b"[QC] Mo the tin dung. TC gui 5656")))
        assert read_raw(s).command_status != 0


def test_a_submit_multi_over_a_cap_by_itself_is_dropped_with_a_shared_store_too(tmp_path, redis_server):  # noqa: F811
    """One recipient listed four times (3 ads per advertiser per recipient a day): dropped in process, and
    with `--state redis://` too, where all of one message's ops go to the server's script together (it used
    to measure each against the state before the message: four times "0 before", forwarded)."""
    import io
    import json
    from engine.verdictlog import VerdictLog
    from engine.state import install
    from engine.state.redis_store import RedisStore
    redis_server.flush()

    def run(url):
        d = tmp_path / ("data-r" if url else "data-m")
        ListStore(d).import_csv("senders", SENDERS, "senders.csv")
        pipe = build(data_dir=d, with_model=False)
        out = io.StringIO()
        h = ProxyHarness(pipe, clock=lambda: NOON, verdict_log=VerdictLog(out)).start()
        try:
            if url:
                async def setup():
                    install(pipe, RedisStore(url))
                h.call(setup())
            s, _ = raw_session(h)
            s.sendall(encode(P.SubmitMulti(sequence_number=5, source_addr_ton=5, source_addr="SHOPABC",
                                           dest_addresses=tuple((1, 1, 1, "84912777003") for _ in range(4)),
                                           data_coding=1, short_message=b"[QC] Uu dai. TC gui 5656")))
            st = read_raw(s).command_status
            return st, len(h.sim.submits()), [json.loads(x)["action"] for x in out.getvalue().splitlines()]
        finally:
            h.stop()
    mem, red = run(None), run(redis_server.url)
    assert mem[0] != 0 and mem[1] == 0
    assert red[0] == mem[0] and red[1] == 0 and "allow" not in red[2], red
