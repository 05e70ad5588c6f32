"""A concatenated SMS over IMS (3GPP TS 24.341 bodies whose SMS-SUBMIT carries a concatenation UDH, IEI 0x00 / 0x08)
is judged whole, as the SMPP proxy judges a submit_sm's parts (engine/smpp_proxy/concat.py, the one reassembler): its
parts' MESSAGEs wait unanswered (msgparts.py) until all are in, message_concat_timeout passes, or a bound is reached;
each part is then answered once with the message's verdict (dropped: each refused as a dropped MESSAGE is; allowed:
each forwarded), a retransmission of a held part is absorbed (not judged, not forwarded twice), a part after its
message was judged is judged on the whole known text with the remembered verdict. One verdict line a message (`x2/3`),
one a late part (`late`, naming its message by `concat`), as the SMPP side writes them. In process (offline_screen);
time is an argument (`message_parts_expire(now)`)."""
import time

import pytest

from engine.sip_screen.msgparts import HELD_OVERHEAD
from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack

from .sip_helpers import UAC, sent
from .test_sip_message import message, pipe, screen  # noqa: F401 (fixtures)
from .test_sip_sms3gpp import rp_mo

SMS = "application/vnd.3gpp.sms"
DA = "0aa19021436587"                           # TP-DA national 0912345678


def part(text: str, n: int, total: int, ref: int = 7, ucs2: bool = False, ref16: bool = False) -> bytes:
    """An RP-DATA (MS -> network) body: SMS-SUBMIT with UDHI, a concatenation UDH (8-bit reference, IEI 0x00, or
    16-bit, IEI 0x08) naming part `n` of `total`, then `text` (GSM 7-bit after its fill bits, or UCS2)."""
    udh = bytes([0x08, 0x04, ref >> 8, ref & 0xFF, total, n]) if ref16 else bytes([0x00, 0x03, ref, total, n])
    udh = bytes([len(udh)]) + udh
    if ucs2:
        ud = udh + text.encode("utf-16-be")
        return rp_mo(bytes.fromhex("4100" + DA + "0008") + bytes([len(ud)]) + ud)
    head = (len(udh) * 8 + 6) // 7                  # septets the header takes, fill bits included
    septets = gsm_encode(text)
    packed = bytearray(gsm_pack(b"\x00" * head + septets))
    packed[:len(udh)] = udh
    return rp_mo(bytes.fromhex("4100" + DA + "0000") + bytes([head + len(septets)]) + bytes(packed))


def mpart(text, n, total, ref=7, frm="0901234567", **kw) -> bytes:
    """The MESSAGE carrying part `n`: a transaction of its own (branch, Call-ID) per part and reference."""
    return message(part(text, n, total, ref, **kw), SMS, frm=frm, to="+84980000001",
                   call_id=f"p{ref}-{n}-{frm}@x", branch=f"z9hG4bK-p{ref}-{n}-{frm}")


def later(scr, seconds=None) -> float:
    return time.monotonic() + (scr.s.message_concat_timeout if seconds is None else seconds) + 1


def test_the_udh_reads_as_a_part():
    from engine.sip_screen.msgbody import message_content
    got = message_content(SMS, part("WIN ", 1, 3))
    assert (got.text, got.concat) == ("WIN ", (7, 3, 1))
    assert message_content(SMS, part("Việt", 2, 2, 300, ucs2=True, ref16=True)).concat == (300, 2, 2)


def test_spam_split_across_three_parts_is_dropped_whole_each_part_answered_once(screen):
    scr = screen()
    scr.on_datagram(mpart("WIN ", 1, 3), UAC)
    scr.on_datagram(mpart("BIG ", 2, 3), UAC)
    assert sent(scr) == []                                              # held, unanswered
    scr.on_datagram(mpart("now", 3, 3), UAC)
    out = sent(scr)
    assert [(r.status, a) for r, a in out] == [(608, UAC)] * 3          # each part refused, none forwarded
    assert sorted(r.get("call-id") for r, _ in out) == ["p7-1-0901234567@x", "p7-2-0901234567@x",
                                                        "p7-3-0901234567@x"]
    assert all("TEST_SPAM_TEXT" in r.get("reason") for r, _ in out)
    (ln,) = scr.lines()                                                 # one line, the message's
    assert (ln["pdu"], ln["action"], ln["recipient"]) == ("SIP MESSAGE SMS-SUBMIT x3/3", "drop", "0912345678")
    assert "concat" not in ln and "late" not in ln
    scr.on_datagram(mpart("WIN ", 1, 3), UAC)                           # a part's retransmission: its answer again
    assert [r.status for r, _ in sent(scr)] == [608]
    assert len(scr.lines()) == 1 and scr.stats["messages_judged"] == 1 and scr.stats["messages_rejected"] == 3


def test_a_clean_split_message_is_forwarded_whole_each_part_once(screen):
    scr = screen()
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    assert sent(scr) == []
    scr.on_datagram(mpart("at noon", 2, 2), UAC)
    out = sent(scr)
    assert [(r.method, r.get("call-id")) for r, _ in out] == [("MESSAGE", "p7-1-0901234567@x"),
                                                             ("MESSAGE", "p7-2-0901234567@x")]
    assert out[0][0].body == part("see you ", 1, 2)                     # relayed byte for byte
    assert [(ln["pdu"], ln["action"]) for ln in scr.lines()] == [("SIP MESSAGE SMS-SUBMIT x2/2", "allow")]


def test_a_retransmission_of_a_held_part_is_absorbed_not_judged_nor_forwarded_twice(screen):
    scr = screen()
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    scr.on_datagram(mpart("see you ", 1, 2), UAC)                       # RFC 3261 Timer E: the same branch again
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    assert sent(scr) == [] and scr.stats["messages_replayed"] == 2
    scr.on_datagram(mpart("at noon", 2, 2), UAC)
    assert [r.get("call-id") for r, _ in sent(scr)] == ["p7-1-0901234567@x", "p7-2-0901234567@x"]
    assert len(scr.lines()) == 1


def test_a_message_that_never_completes_is_judged_at_the_timeout_on_the_parts_it_has(screen):
    scr = screen(message_concat_timeout=3.0)
    scr.on_datagram(mpart("WIN ", 1, 3), UAC)
    scr.on_datagram(mpart("BIG now", 2, 3), UAC)
    scr.message_parts_expire(time.monotonic() + 1.0)                    # not yet
    assert sent(scr) == []
    scr.message_parts_expire(later(scr))
    assert [r.status for r, _ in sent(scr)] == [608, 608]
    (ln,) = scr.lines()
    assert (ln["pdu"], ln["action"]) == ("SIP MESSAGE SMS-SUBMIT x2/3", "drop") and ln["concat"]
    assert len(scr.message_parts) == 0 and scr.stats["message_concat_incomplete"] == 1


def test_a_late_part_is_judged_on_the_whole_known_text_with_its_message_named(screen):
    scr = screen()
    scr.on_datagram(mpart("WIN ", 1, 2), UAC)
    scr.message_parts_expire(later(scr))                                # judged alone: clean, forwarded
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE"]
    scr.on_datagram(mpart("BIG now", 2, 2), UAC)                        # judged at once with part 1's text
    assert [r.status for r, _ in sent(scr)] == [608]
    first, late = scr.lines()
    assert (first["pdu"], first["action"]) == ("SIP MESSAGE SMS-SUBMIT x1/2", "allow")
    assert (late["pdu"], late["action"], late["late"]) == ("SIP MESSAGE SMS-SUBMIT part 2/2 late", "drop", True)
    assert late["concat"] == first["concat"]                            # the report ties it to its message


def test_a_late_part_of_a_dropped_message_is_dropped_whatever_its_own_text(screen):
    scr = screen()
    scr.on_datagram(mpart("WIN BIG ", 1, 2), UAC)
    scr.message_parts_expire(later(scr))
    assert [r.status for r, _ in sent(scr)] == [608]
    scr.on_datagram(mpart("see you", 2, 2), UAC)
    assert [r.status for r, _ in sent(scr)] == [608]
    assert [ln["action"] for ln in scr.lines()] == ["drop", "drop"]


def test_the_bound_judges_the_oldest_waiting_message_first(screen):
    scr = screen(max_pending_message_concat=2)
    for ref in (1, 2):
        scr.on_datagram(mpart("see you ", 1, 2, ref), UAC)
    assert sent(scr) == [] and len(scr.message_parts) == 2
    scr.on_datagram(mpart("see you ", 1, 2, 3), UAC)                    # a third: the oldest judged with what it has
    assert [r.get("call-id") for r, _ in sent(scr)] == ["p1-1-0901234567@x"]
    assert len(scr.message_parts) == 2
    size = scr.message_parts.size // 2                                  # what one part holds (HELD_OVERHEAD too)
    assert size > HELD_OVERHEAD
    scr2 = screen(max_pending_message_concat_bytes=2 * size)            # bytes: the oldest judged too
    for ref in (1, 2, 3):
        scr2.on_datagram(mpart("see you ", 1, 2, ref), UAC)
    assert [r.get("call-id") for r, _ in sent(scr2)] == ["p1-1-0901234567@x"]
    assert scr2.message_parts.size == 2 * size


def test_another_senders_part_neither_completes_nor_poisons_a_message(screen):
    scr = screen()
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    scr.on_datagram(mpart("WIN BIG", 2, 2, frm="0907777777"), UAC)      # same reference, total and destination
    assert sent(scr) == [] and len(scr.message_parts) == 2
    scr.on_datagram(mpart("at noon", 2, 2), UAC)
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE", "MESSAGE"]
    assert [ln["action"] for ln in scr.lines()] == ["allow"]


def test_a_timeout_of_0_holds_nothing_each_part_judged_with_the_parts_before_it(screen):
    scr = screen(message_concat_timeout=0.0)
    scr.on_datagram(mpart("WIN ", 1, 2), UAC)
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE"]
    scr.on_datagram(mpart("BIG now", 2, 2), UAC)
    assert [r.status for r, _ in sent(scr)] == [608]


def test_a_stop_or_drain_answers_every_held_part(screen):
    scr = screen()
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    scr.message_parts_judge_all()
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE"] and len(scr.message_parts) == 0


def test_the_settings_and_their_checks(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    from .conftest import CONFIG
    s = load_sip_settings(CONFIG)
    assert (s.message_concat_timeout, s.max_pending_message_concat) == (1.0, 1024)
    assert s.message_concat_timeout < 32                                # RFC 3261 Timer F: well under it
    (tmp_path / "sip.toml").write_text("[sip]\nmessage_concat_timeout = 40\n")
    with pytest.raises(ValueError, match="message_concat_timeout"):
        load_sip_settings(tmp_path)
    (tmp_path / "sip.toml").write_text("[sip]\nmax_pending_message_concat = 0\n")
    with pytest.raises(ValueError, match="max_pending_message_concat"):
        load_sip_settings(tmp_path)


def test_a_second_transaction_with_a_held_part_is_the_copy_judged_the_first_answered_500(screen):
    """Not a retransmission (another branch and Call-ID): the newest copy waits and gets the message's answer; the
    older is answered at once (its retransmission gets that answer again), never left unanswered."""
    scr = screen()
    scr.on_datagram(mpart("lunch at ", 1, 2), UAC)
    again = message(part("lunch at ", 1, 2), SMS, to="+84980000001", call_id="again@x", branch="z9hG4bK-again")
    scr.on_datagram(again, UAC)
    assert [(r.status, r.get("call-id")) for r, _ in sent(scr)] == [(500, "p7-1-0901234567@x")]
    scr.on_datagram(mpart("lunch at ", 1, 2), UAC)
    assert [r.status for r, _ in sent(scr)] == [500]
    scr.on_datagram(mpart("one today", 2, 2), UAC)
    out = sent(scr)
    assert [(r.method, r.get("call-id")) for r, _ in out] == [("MESSAGE", "again@x"),
                                                             ("MESSAGE", "p7-2-0901234567@x")]
    assert scr.stats["message_parts_resent"] == 1
    assert [ln["action"] for ln in scr.lines()] == ["refuse", "allow"]


def test_with_a_shared_store_every_part_waits_for_the_settled_verdict(screen, pipe):  # noqa: F811
    """Under a shared state store (Redis) the message's verdict settles later: its parts stay unanswered meanwhile, a
    retransmission is absorbed, then each part gets the settled answer once."""
    from .test_sip_message import _HeldVerdicts
    held = _HeldVerdicts()
    pipe.state.shared = held
    try:
        scr = screen()
        scr.on_datagram(mpart("WIN ", 1, 2, ref=9), UAC)
        scr.on_datagram(mpart("BIG now", 2, 2, ref=9), UAC)
        scr.on_datagram(mpart("WIN ", 1, 2, ref=9), UAC)
        assert sent(scr) == [] and len(held.waiting) == 1 and scr.lines() == []
        v, done = held.waiting.pop()
        done(v)
        assert [r.status for r, _ in sent(scr)] == [608, 608]
        scr.on_datagram(mpart("BIG now", 2, 2, ref=9), UAC)
        assert [r.status for r, _ in sent(scr)] == [608]
        assert [ln["action"] for ln in scr.lines()] == ["drop"] and held.waiting == []
    finally:
        pipe.state.shared = None
