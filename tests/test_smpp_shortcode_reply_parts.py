"""A 5656 reply longer than one SMS (engine/smpp_proxy/reply_parts.py, shortcode_replies.py) reaches the subscriber on
an SMSC that takes no message_payload in a submit_sm: it went there whole (an SMSC refusing that TLV refused the reply,
the subscriber never learnt their DK DNC was registered), or in a short_message of up to 254 octets that many SMSCs
refuse too. It now goes as concatenated parts (UDH IEI 0x00, esm_class UDHI), each its own submit_sm, read here
by an independent peer: smpplib parses each part's bytes, and its GSM 03.38 table reads the septets."""
import time

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st
import smpplib.smpp

from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode_text
from engine.smpp_proxy.codec.text import GSM_BASIC, GSM_EXT
from engine.smpp_proxy.reply_parts import concatenated
from tests.test_smpp_mo_concat import deliver, mo, proxy  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)

VI = ("Quý khách đã đăng ký thành công dịch vụ chặn tin nhắn quảng cáo (DNC) cho {channel}. Để hủy, "
      "soạn HUY DNC gửi 5656. Chi tiết liên hệ 18001091 (miễn phí).")
CHANNEL = "tin nhan va cuoc goi"        # a DK DNC's channel: both


class _Numbering:
    def next_sequence(self):        # smpplib numbers a PDU it makes from its client, even one it parses
        return 0


def seen_by_peer(h, to):
    """Each submit_sm to `to`, as smpplib parses its bytes."""
    return [smpplib.smpp.parse_pdu(p.raw, client=_Numbering()) for p in h.sim.submits() if p.destination_addr == to]


def _gsm(septets: bytes) -> str:
    """GSM 03.38 septets (one an octet, as data_coding 0 carries them on this link) through smpplib's table, whose
    extension characters sit at 0x80 + their code; a part that ends on ESC is a pair cut in two."""
    out, esc = [], False
    for s in septets:
        if esc:
            out.append(smpplib.gsm.GSM_CHARACTER_TABLE[0x80 + s])
            esc = False
        elif s == 0x1B:
            esc = True
        else:
            out.append(smpplib.gsm.GSM_CHARACTER_TABLE[s])
    assert not esc, "a part ends inside an escape pair"
    return "".join(out)


def read_parts(pdus):
    """The text of one concatenated message, each part read on its own (a cut pair fails here) and put in its
    order; checks every part is one SMS with one concatenation element of one reference."""
    refs, texts = set(), {}
    for q in pdus:
        sm = q.short_message
        assert q.esm_class & 0x40 and q.message_payload is None       # SMPP 3.4 §5.2.12 UDHI, no TLV
        assert sm[:3] == b"\x05\x00\x03"                                # UDHL 5, IEI 0x00 (8-bit reference), 3
        refs.add(sm[3])
        assert sm[4] == len(pdus) and 1 <= sm[5] <= len(pdus)
        ud = sm[6:]
        if q.data_coding == 8:
            assert len(ud) <= 134, len(ud)                              # 67 UCS-2 characters
            texts[sm[5]] = ud.decode("utf-16-be")                       # strict: a cut surrogate pair raises
        else:
            assert q.data_coding == 0 and len(ud) <= 153, len(ud)       # 153 septets
            texts[sm[5]] = _gsm(ud)
    assert len(refs) == 1 and sorted(texts) == list(range(1, len(pdus) + 1))
    return "".join(texts[i] for i in sorted(texts))


def _dk_dnc(h, src):
    deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: h.proxy.stats["shortcode_replies_sent"] + h.proxy.stats["shortcode_replies_failed"] >= 1)


def test_a_ucs2_reply_with_diacritics_goes_as_parts_the_peer_reads_whole(proxy, pipe):
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": VI})
    src = "84911000601"
    _dk_dnc(h, src)
    whole = VI.replace("{channel}", CHANNEL)
    parts = seen_by_peer(h, src)
    assert len(whole.encode("utf-16-be")) == 328 and len(parts) == 3
    assert all(q.data_coding == 8 for q in parts)
    assert read_parts(parts) == whole
    st = h.proxy.stats
    assert st["shortcode_replies_sent"] == 1 and not st["shortcode_replies_failed"]


@pytest.mark.parametrize("ch", ["{", "€"])
def test_a_gsm_reply_is_not_cut_inside_an_escape_pair(proxy, pipe, ch):
    """152 characters and then one of the extension table (ESC + code, septets 153 and 154): a part of 153 septets
    would end on the ESC. Over 160 septets it went in one short_message of 174 octets, which SMSCs refuse."""
    reply = "A" * 152 + ch + " Soan HUY DNC gui 5656 de huy."
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": reply})
    src = "84911000602"
    _dk_dnc(h, src)
    parts = seen_by_peer(h, src)
    assert [len(q.short_message) - 6 for q in parts] == [152, 32]
    assert all(q.data_coding == 0 for q in parts)
    assert read_parts(parts) == reply


def test_a_ucs2_reply_is_not_cut_inside_a_surrogate_pair(proxy, pipe):
    reply = "ạ" * 66 + "\U0001F600" + " cảm ơn quý khách"
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": reply})
    src = "84911000603"
    _dk_dnc(h, src)
    parts = seen_by_peer(h, src)
    assert [len(q.short_message) - 6 for q in parts] == [132, 38]
    assert read_parts(parts) == reply


@pytest.mark.parametrize("reply, sms", [("A" * 158 + "€", 1), ("A" * 159 + "€", 2), ("ạ" * 70, 1), ("ạ" * 71, 2)],
                         ids=["gsm-160", "gsm-161", "ucs2-70", "ucs2-71"])
def test_one_sms_is_160_septets_escapes_counted_or_70_ucs2_characters(proxy, pipe, reply, sms):
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": reply})
    src = "84911000604"
    _dk_dnc(h, src)
    pdus = seen_by_peer(h, src)
    assert len(pdus) == sms
    if sms == 1:
        [q] = pdus
        assert q.esm_class == 0 and len(q.short_message) == 140 + 20 * (q.data_coding == 0)
    else:
        assert read_parts(pdus) == reply


@pytest.mark.parametrize("status", [C.ESME_ROPTPARNOTALLWD, C.ESME_RINVOPTPARSTREAM])
def test_an_smsc_refusing_message_payload_gets_the_reply_again_as_parts(proxy, pipe, status):
    """Under long_replies = "payload" the reply goes whole in message_payload; an SMSC that takes no such TLV refused
    it and the reply was failed. It is sent again as parts, once, counted; the reply counted sent, once."""
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": VI}, shortcode_long_replies="payload")
    h.sim.payload_status = status
    src = "84911000605"
    _dk_dnc(h, src)
    first, *parts = seen_by_peer(h, src)
    whole = VI.replace("{channel}", CHANNEL)
    assert first.message_payload.decode("utf-16-be") == whole and first.short_message in (b"", None)
    assert read_parts(parts) == whole
    st = h.proxy.stats
    assert (st["shortcode_replies_sent"], st["shortcode_replies_failed"], st["shortcode_replies_payload_refused"]) \
        == (1, 0, 1)


def test_a_refused_part_fails_the_reply_once(proxy, pipe):
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": VI})
    h.sim.answer_status = C.ESME_RSUBMITFAIL
    src = "84911000606"
    _dk_dnc(h, src)
    st = h.proxy.stats
    assert st["shortcode_replies_failed"] == 1 and not st["shortcode_replies_sent"]
    assert all(q.esm_class & 0x40 for q in seen_by_peer(h, src))          # parts (a refused one: the rest not sent)
    assert not st["shortcode_replies_payload_refused"]


def test_a_reply_in_parts_is_one_reply_toward_the_hourly_cap(proxy, pipe):
    cancelled = VI.replace("đã đăng ký", "đã hủy đăng ký")
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": VI, "DNC_CANCELLED": cancelled},
                 shortcode_replies_per_hour=2)
    src = "84911000607"
    for command in (b"DK DNC", b"HUY DNC", b"DK DNC S"):
        deliver(h, mo(command, src=src, dc=0, esm_class=0))
    st_ = h.proxy.stats
    assert wait(lambda: st_["shortcode_replies_sent"] == 2 and st_["shortcode_replies_capped"] == 1), dict(st_)
    time.sleep(0.3)
    assert len(seen_by_peer(h, src)) == 6 and h.proxy.stats["shortcode_replies_sent"] == 2


def test_parts_not_answered_in_time_are_one_reply_unanswered(proxy, pipe):
    """The SMSC answers no part within the response timeout: the reply is counted unanswered once, never sent again
    (each part may well be delivered), never failed."""
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": VI}, smsc_response_timeout=0.5)
    h.sim.answer_delay = 1.0
    src = "84911000608"
    deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: h.proxy.stats["shortcode_replies_unanswered"], 5)
    time.sleep(0.5)
    st_ = h.proxy.stats
    assert len(seen_by_peer(h, src)) == 3
    assert (st_["shortcode_replies_unanswered"], st_["shortcode_replies_sent"], st_["shortcode_replies_failed"]) \
        == (1, 0, 0)


# over one SMS, escapes and surrogate pairs often enough to fall on the cuts; not § and form feed, which smpplib's
# table has as ` (a gap of the peer's, not of the split)
_GSM_TEXT = st.text(st.sampled_from([c for c in GSM_BASIC if c not in "\x1b§"] + [c for c in GSM_EXT.values()
                                                                                 if c != "\f"] * 8),
                    min_size=150, max_size=700)
_ANY_TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs",)),
                              st.sampled_from("ạ€\U0001F600\U0001F4E9")), min_size=60, max_size=400)


@given(st.one_of(_GSM_TEXT, _ANY_TEXT), st.integers(0, 255))
@settings(max_examples=300)
def test_any_reply_cut_in_parts_reads_back_whole(text, ref):
    dc, body = encode_text(text)
    if len(body) <= (160 if dc == 0 else 140):
        return
    parts = [_Sm(dc, sm) for sm in concatenated(dc, body, ref)]
    assert read_parts(parts) == text and all(p.short_message[3] == ref for p in parts)


class _Sm:
    """A part as read_parts reads one from smpplib."""
    esm_class, message_payload = 0x40, None

    def __init__(self, data_coding, short_message):
        self.data_coding, self.short_message = data_coding, short_message
