"""A concatenated message sent as submit_multi parts (UDH concatenation element or SAR TLVs) is put together and
judged whole, as a submit_sm's parts are: the handset joins the parts whichever PDU carried them. Before, each
submit_multi part was judged on its own fragment, so a blacklisted link split across two parts went out to every
destination (found by a probe of how message content is judged)."""
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses

SPAM = "Click phish.example/verify to keep your account"
HAM = "Reminder: the quarterly planning meeting is on Thursday in room 402, bring the slides please"
TWO = ((1, 1, 1, "84912345678"), (1, 1, 1, "84912345679"))


def _multi(seq, body, dests=TWO, esm=0x40, tlvs=()):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr="84901234567", dest_addresses=dests,
                                esm_class=esm, short_message=body, tlvs=tuple(tlvs)))


def _udh(ref, total, n):
    return bytes([5, 0, 3, ref, total, n])


def test_a_link_split_across_submit_multi_parts_is_judged_whole(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_multi(11, _udh(0x33, 2, 1) + SPAM[:15].encode()))
        s.sendall(_multi(12, _udh(0x33, 2, 2) + SPAM[15:].encode()))
        assert all(st != 0 for st in _statuses(s, [11, 12]))
        time.sleep(0.1)
        assert h.sim.submits() == []


def test_one_destination_submit_multi_parts_and_sar_tlvs_are_judged_whole(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        for i, part in enumerate((SPAM[:15], SPAM[15:]), 1):
            sar = [Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                   Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes([i]))]
            s.sendall(_multi(20 + i, part.encode(), dests=TWO[:1], esm=0, tlvs=sar))
        assert all(st != 0 for st in _statuses(s, [21, 22]))
        time.sleep(0.1)
        assert h.sim.submits() == []


def test_a_submit_sm_part_and_a_submit_multi_part_to_the_same_handset_are_one_message(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=31, source_addr="84901234567", destination_addr="0912345678",
                                    esm_class=0x40, short_message=_udh(0x55, 2, 1) + SPAM[:15].encode())))
        s.sendall(_multi(32, _udh(0x55, 2, 2) + SPAM[15:].encode(), dests=TWO[:1]))
        assert all(st != 0 for st in _statuses(s, [31, 32]))
        time.sleep(0.1)
        assert h.sim.submits() == []


def test_a_late_submit_multi_part_is_judged_with_the_parts_before_it(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_multi(2, _udh(0x51, 2, 1) + SPAM[:15].encode()))
        assert _statuses(s, [2]) == [0]                    # alone after the timeout: nothing to see in it
        s.sendall(_multi(3, _udh(0x51, 2, 2) + SPAM[15:].encode()))
        assert _statuses(s, [3]) != [0]                    # with the first part: the whole link


def test_ham_in_submit_multi_parts_goes_to_every_destination_whole(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_multi(42, _udh(0x60, 2, 2) + HAM[40:].encode()))         # out of order
        s.sendall(_multi(41, _udh(0x60, 2, 1) + HAM[:40].encode()))
        assert _statuses(s, [41, 42]) == [0, 0]
        end = time.time() + 3
        while len(h.sim.submits()) < 2 and time.time() < end:
            time.sleep(0.02)
        got = h.sim.submits()
        assert len(got) == 2 and all(g.command_id == C.SUBMIT_MULTI for g in got)


def test_with_a_shared_state_store_too(pipe, tmp_path):
    from engine.state import install
    from engine.state.redis_store import RedisStore
    from tests.redis_helpers import RedisServer
    srv = RedisServer(tmp_path / "redis")
    try:
        with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
            async def setup():
                install(pipe, RedisStore(srv.url))
            h.call(setup())
            s, _ = raw_session(h)
            s.sendall(_multi(11, _udh(0x33, 2, 1) + SPAM[:15].encode()))
            s.sendall(_multi(12, _udh(0x33, 2, 2) + SPAM[15:].encode()))
            assert all(st != 0 for st in _statuses(s, [11, 12]))
            s.sendall(_multi(42, _udh(0x60, 2, 2) + HAM[40:].encode()))
            s.sendall(_multi(41, _udh(0x60, 2, 1) + HAM[:40].encode()))
            assert _statuses(s, [41, 42]) == [0, 0]
            assert len(h.sim.submits()) == 2
    finally:
        srv.stop()
