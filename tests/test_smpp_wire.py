"""The proxy's lean submit path on the wire: what is judged and what is forwarded when the text
is in message_payload (with its UDH there too), when the content is binary, and when a tagged
message gets its prefix. Raw sockets as the ESME, the project simulator as the SMSC, 127.0.0.1."""
import json
import socket
import struct
from datetime import datetime, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode, pdu_concat, pdu_text
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.text import gsm_encode
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog

SPAM = ("Chuc mung ban da trung thuong 500 trieu dong tu chuong trinh tri an khach hang. "
        "Soan NHAN gui 8x77 de nhan giai ngay, lien he 0987654321 truoc 17h hom nay")


class Lines:
    def __init__(self):
        self.lines = []

    def write(self, s):
        self.lines.extend(json.loads(x) for x in s.splitlines() if x.strip())

    def flush(self):
        pass


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    return build(data_dir=d)


def session(h):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    s.sendall(encode(P.BindTransceiver(sequence_number=1, system_id="esme1", password="secret", interface_version=0x34)))
    assert read(s).command_status == 0
    return s


def read(s):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return b
    hdr = exact(4)
    return P.decode(hdr + exact(struct.unpack(">I", hdr)[0] - 4))


def submit(s, seq, **kw):
    kw.setdefault("source_addr", "84901234567")
    kw.setdefault("destination_addr", "84912345678")
    s.sendall(encode(P.SubmitSm(sequence_number=seq, **kw)))


def test_udh_in_message_payload_is_reassembled_and_judged_once(pipe):
    # SMPP 3.4 §5.3.2.32 + 3GPP TS 23.040 §9.2.3.24: a concatenated message may carry its UDH at
    # the start of message_payload; the parts are judged once, as one text
    out = Lines()
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=5.0), verdict_log=VerdictLog(out)) as h:
        s = session(h)
        half = len(SPAM) // 2
        for i, part in enumerate((SPAM[:half], SPAM[half:]), 1):
            udh = bytes((5, 0, 3, 0x42, 2, i))
            submit(s, 10 + i, esm_class=C.ESM_UDHI, tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, udh + part.encode()),))
        resps = [read(s), read(s)]
        assert sorted(r.sequence_number for r in resps) == [11, 12]
        assert len({r.command_status for r in resps}) == 1         # one verdict for both parts
        sms = [ln for ln in out.lines if ln.get("kind") == "sms"]
        assert len(sms) == 1 and sms[0]["pdu"] == "SubmitSm x2/2"
        fwd = h.sim.submits()
        if resps[0].command_status == 0:                           # forwarded: byte-faithful parts
            assert [pdu_concat(p) for p in fwd] == [(0x42, 2, 1), (0x42, 2, 2)]
        else:
            assert fwd == []
        s.close()


def test_binary_message_judged_on_the_url_it_carries(pipe):
    out = Lines()
    with ProxyHarness(pipe, verdict_log=VerdictLog(out)) as h:
        s = session(h)
        body = b"\x01\x06\x01\xae" + b"\x02\x05\x6a\x00 see http://phish.example/login now"
        submit(s, 5, data_coding=0x04, short_message=body)
        r = read(s)
        assert r.command_status != 0                              # blacklisted domain: dropped
        line = [ln for ln in out.lines if ln.get("kind") == "sms"][0]
        assert line.get("binary") is True and any("phish.example" in h["detail"] or h["symbol"].startswith("BLACK")
                                                  for h in line["hits"])
        submit(s, 6, data_coding=0x04, short_message=b"\x00\x01\x02\x03 nothing readable")
        assert read(s).command_status == 0
        s.close()


def test_tag_prefix_goes_into_message_payload_text(pipe):
    clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)   # 10:00 in Hanoi
    ListStore(pipe.store.dir).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop,QC,,,\n")
    pipe.lists = pipe.store.load()
    with ProxyHarness(pipe, settings=SmppSettings(tag_prefix="[?] "), clock=clock) as h:
        s = session(h)
        # AD_NO_OPTOUT tags it; the text is in message_payload, so the prefix goes there
        submit(s, 7, source_addr="SHOPABC", source_addr_ton=5,
               tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, gsm_encode("[QC] Giam gia 50% cuoi tuan")),))
        assert read(s).command_status == 0
        fwd = h.sim.submits()[0]
        assert pdu_text(fwd) == "[?] [QC] Giam gia 50% cuoi tuan" and fwd.short_message == b""
        assert P.tlv(fwd, 0x1400) is not None
        # UCS2 in short_message: the prefix in UCS2 too
        submit(s, 8, source_addr="SHOPABC", source_addr_ton=5, data_coding=0x08,
               short_message="[QC] Giảm giá cuối tuần".encode("utf-16-be"))
        assert read(s).command_status == 0
        assert pdu_text(h.sim.submits()[1]) == "[?] [QC] Giảm giá cuối tuần"
        s.close()


def test_gsm_bytes_under_data_coding_1_get_the_data_coding_0_verdict_and_the_reading_is_per_account(pipe):
    """Issue 17: node-smpp sends GSM 03.38 bytes labelled data_coding 1; `[` is ESC `<` there. The
    default reading (auto) sees the escape and judges the text the handset shows; an account set to
    `text_reading = "ascii"` is read byte for byte."""
    clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)   # 10:00 in Hanoi
    body = gsm_encode("[QC] Giam gia 50% cuoi tuan. Tu choi TC gui 5656")
    assert b"\x1b<" in body
    out = Lines()
    with ProxyHarness(pipe, verdict_log=VerdictLog(out), clock=clock) as h:
        s = session(h)
        for seq, dc in ((2, 0x00), (3, 0x01)):
            submit(s, seq, source_addr="84901234567", data_coding=dc, short_message=body)
            read(s)
        h.run(lambda: h.proxy.settings.accounts["esme1"].__setattr__("text_reading", "ascii"))
        submit(s, 4, source_addr="84901234567", data_coding=0x01, short_message=body)
        read(s)
        s.close()
        h.run(h.proxy.vlog.flush)
    recs = [r for r in out.lines if r.get("kind") == "sms"]
    assert len(recs) == 3
    syms = [sorted(x["symbol"] for x in r["hits"]) for r in recs]
    assert recs[0]["action"] == recs[1]["action"] == "drop" and syms[0] == syms[1]
    assert "AD_SENDER_NOT_QC" in syms[0]
    assert "AD_SENDER_NOT_QC" not in syms[2]          # read as ASCII, the text does not start with [QC]
    # the verdict line says when the bytes were not read literally
    assert [r.get("reading") for r in recs] == [None, "gsm", None]
