"""Spam disguised in how an SMS is encoded or split is read as the handset shows it: one stray character or
an odd length in UCS-2, an emoji split across parts, data_coding of the automatic-deletion group, a data_sm
split with SAR TLVs, a part sent after the reassembly timeout, replace_sm bytes in UCS-2; SAR TLVs and a UDH
that disagree are refused; the tag prefix never breaks a part (SMS size), a port-addressed message, or the
account's reading of data_coding 0/1."""
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode, view_sm
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.lean import prefix_user_data
from engine.smpp_proxy.codec.text import read_text
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)

SPAM = "Click phish.example/verify to keep your account"


def _sm(seq, body, dc=0, esm=0, tlvs=(), cmd=P.SubmitSm):
    kw = dict(short_message=body) if cmd is P.SubmitSm else {}
    return encode(cmd(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                      data_coding=dc, esm_class=esm, tlvs=tuple(tlvs), **kw))


@pytest.mark.parametrize("payload", [(SPAM + "\ue000").encode("utf-16-be"), SPAM.encode("utf-16-be") + b"\x00",
                                     (SPAM + "\ud83d").encode("utf-16-be", "surrogatepass")])
def test_one_stray_unit_leaves_ucs2_read_as_ucs2(payload):
    text, reading = read_text(0x08, payload)
    assert "phish.example" in text and reading == "ucs2"


def test_latin1_bytes_sent_as_ucs2_are_still_read_as_latin1():
    text, reading = read_text(0x08, "Khuyến mãi lớn".encode("latin-1", "replace"))
    assert reading == "latin1-in-ucs2"


@pytest.mark.parametrize("dc", [0x48, 0x58, 0x68, 0x78])
def test_the_automatic_deletion_group_names_its_alphabet(dc):
    assert read_text(dc, SPAM.encode("utf-16-be"))[0] == SPAM
    assert read_text(dc & ~0x0C | 0x04, b"\x01\x02")[1] == "binary"


def _statuses(s, seqs):
    got = {}
    while len(got) < len(seqs):
        r = read_raw(s)
        got[r.sequence_number] = r.command_status
    return [got[q] for q in seqs]


def test_a_data_sm_split_with_sar_is_judged_whole(pipe):
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        for i, part in enumerate((SPAM[:15], SPAM[15:]), 1):
            tl = [Tlv(C.TAG_MESSAGE_PAYLOAD, part.encode()), Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x07"),
                  Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"), Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes([i]))]
            s.sendall(_sm(10 + i, b"", cmd=P.DataSm, tlvs=tl))
        assert all(st != 0 for st in _statuses(s, [11, 12]))
        time.sleep(0.1)
        assert h.sim.submits() == []


def test_sar_and_udh_that_disagree_are_refused(pipe):
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        udh = bytes([5, 0, 3, 0x42, 2, 1])
        sar = [Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x09"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
               Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x02")]
        s.sendall(_sm(5, udh + b"Click phish.exa", esm=0x40, tlvs=sar))
        assert _statuses(s, [5]) == [C.ESME_RINVOPTPARAMVAL]


def test_a_late_part_is_judged_with_the_parts_before_it(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(2, bytes([5, 0, 3, 0x51, 2, 1]) + SPAM[:15].encode(), esm=0x40))
        assert _statuses(s, [2]) == [0]                    # alone after the timeout: nothing to see in it
        s.sendall(_sm(3, bytes([5, 0, 3, 0x51, 2, 2]) + SPAM[15:].encode(), esm=0x40))
        assert _statuses(s, [3]) != [0]                    # with the first part: the whole link


def test_replace_sm_bytes_in_ucs2_are_judged_as_ucs2(pipe):
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.ReplaceSm(sequence_number=4, message_id="00000001", source_addr="84901234567",
                                     short_message=SPAM.encode("utf-16-be")[:254])))
        assert _statuses(s, [4]) != [0]


def _view(body, dc=0, esm=0):
    return view_sm(_sm(1, body, dc, esm))


def test_the_prefix_never_makes_a_part_too_long_or_touches_application_data():
    pre = b"[SPAM?] "
    assert prefix_user_data(_view(b"A" * 160), pre, "gsm") is None                        # 160 septets already
    assert prefix_user_data(_view(bytes([5, 0, 3, 1, 2, 1]) + b"B" * 150, esm=0x40), pre, "gsm") is None
    ucs = bytes([5, 0, 3, 1, 2, 1]) + ("C" * 67).encode("utf-16-be")
    assert prefix_user_data(_view(ucs, dc=8, esm=0x40), "[SPAM?] ".encode("utf-16-be"), "ucs2") is None
    port = bytes([6, 5, 4, 0x23, 0xF4, 0, 0]) + b"app-data:42"
    assert prefix_user_data(_view(port, esm=0x40), pre, "gsm") is None
    assert prefix_user_data(_view(b"L" * 138, dc=3), pre, "latin1") is None             # 8-bit: 140 octets
    out = prefix_user_data(_view(b"Hello there"), pre, "gsm")
    assert view_sm(out).short_message == pre + b"Hello there"
