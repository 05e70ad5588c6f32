"""The SMPP proxy against independent peers: smpplib's client as the ESME, our SMSC simulator
(which records every byte it receives) as the SMSC. Everything on 127.0.0.1."""
import socket
import struct
import time
from datetime import datetime, timezone

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import decode, encode, pdu_text, with_sequence
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness

HAM = "Hi Lan, the meeting moved to 3pm tomorrow. See you there"
VI = "Chào bạn, hẹn gặp lại ở quán cà phê lúc 3 giờ chiều nhé. Nhớ mang theo tài liệu hôm qua."


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("blacklist", b"kind,value\nnumber,84987000666\ndomain,phish.example\n")
    return build(data_dir=d)


@pytest.fixture
def harness(pipe):
    s = SmppSettings(concat_timeout=2.0)
    h = ProxyHarness(pipe, accounts=("esme1:secret", "esme2:pw2"), settings=s).start()
    yield h
    h.stop()


def client(h, system_id="esme1", password="secret", bind="transceiver"):
    c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
    c.connect()
    getattr(c, f"bind_{bind}")(system_id=system_id, password=password)
    return c


def send(c, text, src="84901234567", dst="84912345678", registered_delivery=0):
    parts, enc, esm = smpplib.gsm.make_parts(text)
    sent = []
    for p in parts:
        sent.append(c.send_message(source_addr_ton=1, source_addr_npi=1, source_addr=src, dest_addr_ton=1,
                                   dest_addr_npi=1, destination_addr=dst, short_message=p, data_coding=enc,
                                   esm_class=esm, registered_delivery=registered_delivery))
    resps = [c.read_pdu() for _ in sent]
    return sent, resps


def receive(c):
    """Read one deliver_sm the way smpplib's own loop does (it answers deliver_sm_resp itself)."""
    got = []
    c.set_message_received_handler(lambda pdu: got.append(pdu))
    while not got:
        c.read_once()
    return got[0]


def wait(pred, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_ham_forwarded_byte_faithfully_and_message_id_returned(harness):
    c = client(harness)
    sent, resps = send(c, HAM)
    assert resps[0].command == "submit_sm_resp" and resps[0].status == 0
    assert wait(lambda: harness.sim.submits())
    fwd = harness.sim.submits()[0]
    # only the sequence number differs from what the ESME sent
    assert with_sequence(fwd.raw, sent[0].sequence) == sent[0].generate()
    assert resps[0].message_id.decode() == "00000001"
    c.unbind(); c.disconnect()


def test_spam_gets_error_status_and_is_not_forwarded(harness):
    c = client(harness)
    _, r1 = send(c, "Your account is locked, verify at http://phish.example/login today please")
    _, r2 = send(c, "hello there", src="84987000666")
    assert r1[0].status == C.ESME_RSUBMITFAIL and r2[0].status == C.ESME_RINVSRCADR
    time.sleep(0.1)
    assert harness.sim.submits() == []
    c.disconnect()


def test_ucs2_vietnamese_intact(harness):
    c = client(harness)
    sent, resps = send(c, VI)
    assert all(r.status == 0 for r in resps)
    assert wait(lambda: len(harness.sim.submits()) == len(sent))
    got = harness.sim.submits()
    assert [with_sequence(g.raw, s.sequence) for g, s in zip(got, sent)] == [s.generate() for s in sent]
    assert "".join(pdu_text(g) for g in got) == VI
    c.disconnect()


def test_concatenated_parts_one_verdict(harness):
    c = client(harness)
    long_ham = " ".join(["Reminder: the quarterly planning meeting is on Thursday in room 402."] * 4)
    sent, resps = send(c, long_ham)
    assert len(sent) > 1 and all(r.status == 0 for r in resps)
    assert wait(lambda: len(harness.sim.submits()) == len(sent))
    long_spam = "Click phish.example/verify to unlock your account. " + "x" * 200
    sent2, resps2 = send(c, long_spam)
    assert len(sent2) > 1 and all(r.status == C.ESME_RSUBMITFAIL for r in resps2)
    time.sleep(0.1)
    assert len(harness.sim.submits()) == len(sent)          # none of the spam parts
    c.disconnect()


def test_delivery_receipt_routed_back(harness):
    c = client(harness)
    _, resps = send(c, HAM, registered_delivery=1)
    mid = resps[0].message_id
    dr = receive(c)
    assert dr.command == "deliver_sm" and b"stat:DELIVRD" in dr.short_message
    assert dr.receipted_message_id.rstrip(b"\x00") == mid
    c.disconnect()


def test_receipt_held_until_account_binds_again(harness):
    harness.sim.receipt_delay = 0.3
    tx = client(harness, bind="transmitter")
    _, resps = send(tx, HAM, registered_delivery=1)
    mid = resps[0].message_id
    tx.unbind(); tx.disconnect()
    assert wait(lambda: harness.proxy.stats["receipts_held"] >= 1)
    rx = client(harness, bind="receiver")
    dr = receive(rx)
    assert dr.command == "deliver_sm" and dr.receipted_message_id.rstrip(b"\x00") == mid
    rx.disconnect()


def raw_session(h, system_id="esme1", password="secret"):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    s.sendall(encode(P.BindTransceiver(sequence_number=1, system_id=system_id, password=password, interface_version=0x34)))
    return s, read_raw(s)


def read_raw(s):
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            raise ConnectionError("closed")
        hdr += chunk
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n - 4:
        chunk = s.recv(n - 4 - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return decode(hdr + body)


def raw_submit(sock, seq, text=b"hello"):
    """Send one submit_sm on a raw socket and return the PDU that answers it."""
    sock.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                                   short_message=text)))
    return read_raw(sock)


def test_bind_errors(harness):
    # unknown system_id and wrong password look the same (no account enumeration)
    _, r = raw_session(harness, "nobody", "x")
    assert r.command_status == C.ESME_RINVPASWD
    _, r = raw_session(harness, "esme1", "wrong")
    assert r.command_status == C.ESME_RINVPASWD
    s = socket.create_connection(("127.0.0.1", harness.port), timeout=5)
    s.sendall(encode(P.SubmitSm(sequence_number=3, source_addr="1", destination_addr="2", short_message=b"x")))
    r = read_raw(s)
    assert r.command_id == C.SUBMIT_SM_RESP and r.command_status == C.ESME_RINVBNDSTS


def test_malformed_pdu_nacked_bind_stays_up(harness):
    s, r = raw_session(harness)
    assert r.command_status == 0
    bad = bytes.fromhex("0000001000000099000000000000002a")                # unknown command_id
    s.sendall(bad)
    r = read_raw(s)
    assert r.command_id == C.GENERIC_NACK and r.command_status == C.ESME_RINVCMDID and r.sequence_number == 0x2a
    good = encode(P.SubmitSm(sequence_number=7, source_addr="84901234567", destination_addr="84912345678",
                             short_message=b"hello"))
    short = good[:-6] + b"\x40" + good[-5:]                               # sm_length 64, 5 bytes follow
    s.sendall(short)
    r = read_raw(s)
    # SMPP 3.4 §4.3: the command's own resp (its header was readable), with the precise status
    assert r.command_id == C.SUBMIT_SM_RESP and r.command_status == C.ESME_RINVMSGLEN and r.sequence_number == 7
    s.sendall(encode(P.EnquireLink(sequence_number=8)))
    r = read_raw(s)
    assert r.command_id == C.ENQUIRE_LINK_RESP and r.sequence_number == 8
    s.sendall(good)
    r = read_raw(s)
    assert r.command_id == C.SUBMIT_SM_RESP and r.command_status == 0


def test_oversize_pdu_closes_bind(harness):
    s, _ = raw_session(harness)
    s.sendall(struct.pack(">IIII", 1 << 20, C.SUBMIT_SM, 0, 9))
    r = read_raw(s)
    assert r.command_id == C.GENERIC_NACK
    with pytest.raises((ConnectionError, OSError)):
        read_raw(s)


def test_smsc_down_gives_retryable_status(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        h.run(lambda: [l.transport.close() for l in h.proxy.links])
        h.sim.down = True
        time.sleep(0.2)
        s, _ = raw_session(h)
        assert raw_submit(s, 5).command_status == C.ESME_RTHROTTLED


def test_stalled_smsc_never_gets_an_ok(pipe):
    s = SmppSettings(smsc_response_timeout=0.5)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=s) as h:
        h.sim.stall = True
        sock, _ = raw_session(h)
        assert raw_submit(sock, 5).command_status == C.ESME_RSYSERR


def test_throughput_limit(pipe):
    from engine.smpp_proxy.accounts import Account, hash_password
    s = SmppSettings()
    h = ProxyHarness(pipe, accounts=(), settings=s)
    s.accounts["slow"] = Account("slow", hash_password("pw", iterations=1000), throughput=2)
    with h:
        sock, _ = raw_session(h, "slow", "pw")
        statuses = [raw_submit(sock, 10 + i).command_status for i in range(6)]
        assert C.ESME_RTHROTTLED in statuses and statuses[0] == 0


def test_tagged_message_carries_vendor_tlv(pipe, tmp_path):
    s = SmppSettings(tag_prefix="[?] ")
    clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)   # 10:00 in Hanoi
    # a registered QC sender whose ad lacks opt-out instructions is tagged AD_NO_OPTOUT
    ListStore(pipe.store.dir).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop,QC,,,\n")
    pipe.lists = pipe.store.load()
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=s, clock=clock) as h:
        c = client(h)
        _, r = send(c, "[QC] Giam gia 50% cuoi tuan", src="SHOPABC")
        assert r[0].status == 0
        assert wait(lambda: h.sim.submits())
        fwd = h.sim.submits()[0]
        tag = P.tlv(fwd, 0x1400)
        assert tag is not None and b"AD_NO_OPTOUT" in tag
        assert pdu_text(fwd) == "[?] [QC] Giam gia 50% cuoi tuan"
        c.disconnect()


def test_an_esmes_own_verdict_tlv_never_reaches_the_smsc(pipe):
    """Found by a probe: an ESME's 0x1400 "0;" went out on an allowed message, and on a tagged one before ours
    (an SMSC reading the first saw a clean verdict). Removed from what is forwarded; the other TLVs are kept."""
    from engine.smpp_proxy.codec import Tlv
    clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)   # 10:00 in Hanoi
    ListStore(pipe.store.dir).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop,QC,,,\n")
    pipe.lists = pipe.store.load()
    forged, other = Tlv(0x1400, b"0;"), Tlv(0x1401, b"x")
    with ProxyHarness(pipe, accounts=("esme1:secret",), clock=clock) as h:
        sock, _ = raw_session(h)
        pdus = [P.SubmitSm(sequence_number=5, source_addr="84901234567", destination_addr="84912345678",
                           data_coding=1, short_message=b"Hi Lan, see you at 3pm", tlvs=(forged, other)),
                P.SubmitSm(sequence_number=6, source_addr_ton=5, source_addr="SHOPABC", destination_addr="84912345679",
                           data_coding=1, short_message=b"[QC] Khuyen mai lon cuoi tuan", tlvs=(other, forged)),
                P.DataSm(sequence_number=7, source_addr="84901234567", destination_addr="84912345670", data_coding=1,
                         tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"Hi Lan, see you at 3pm"), forged))]
        for p in pdus:
            sock.sendall(encode(p))
            assert read_raw(sock).command_status == 0
        msgs = lambda: [p for _, p in h.sim.received if p.command_id in (C.SUBMIT_SM, C.DATA_SM)]
        assert wait(lambda: len(msgs()) >= 3)
        fwd = {p.destination_addr: p for p in msgs()}
        assert [t.value for t in fwd["84912345678"].tlvs] == [b"x"]
        assert [t.value for t in fwd["84912345670"].tlvs if t.tag == 0x1400] == []
        tagged = [t.value for t in fwd["84912345679"].tlvs if t.tag == 0x1400]
        assert len(tagged) == 1 and b"AD_NO_OPTOUT" in tagged[0] and P.tlv(fwd["84912345679"], 0x1401) == b"x"
        assert h.proxy.stats["esme_tag_tlv_removed"] == 3


def test_mo_to_shortcode_registers_dnc_and_confirms(harness, pipe):
    c = client(harness)                       # keeps a bind so the SMSC link is used
    assert harness.run(harness.sim.send_mo, "84912000777", "5656", "DK DNC")
    assert wait(lambda: pipe.lists.in_dnc(84912000777, "S") and pipe.lists.in_dnc(84912000777, "V"))
    assert wait(lambda: any(p.destination_addr == "84912000777" for p in harness.sim.submits()))
    assert harness.sim.mo_responses and harness.sim.mo_responses[0].command_status == 0
    assert '"number": 84912000777' in pipe.store.delta_path.read_text()      # persisted
    c.disconnect()


def test_mo_routed_to_account_receiver(harness):
    rx = client(harness, "esme2", "pw2", bind="receiver")
    assert harness.run(harness.sim.send_mo, "84912000888", "8088", "hello service")
    mo = receive(rx)
    assert mo.command == "deliver_sm" and mo.short_message == b"hello service"
    assert wait(lambda: harness.sim.mo_responses)
    assert harness.sim.mo_responses[0].command_status == 0
    rx.disconnect()


def test_silent_drop_answers_ok_with_local_id_and_rejected_receipt(pipe):
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=s) as h:
        c = client(h)
        _, r = send(c, "Your account is locked, verify at http://phish.example/login today please",
                    registered_delivery=1)
        assert r[0].status == 0 and r[0].message_id.startswith(b"L")
        dr = receive(c)
        assert b"stat:REJECTD" in dr.short_message
        assert dr.receipted_message_id.rstrip(b"\x00") == r[0].message_id
        time.sleep(0.1)
        assert h.sim.submits() == []                 # nothing reached the SMSC
        c.disconnect()


def test_a_silently_dropped_submit_multi_gets_one_answer_and_a_receipt_per_recipient(pipe):
    """Found by a probe: the REJECTD receipt read a submit_sm's destination from a submit_multi; the error
    reached the session's catch-all, which answered the same sequence_number again (0x08) and no receipt came."""
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=s) as h:
        sock, _ = raw_session(h)
        sock.sendall(encode(P.SubmitMulti(sequence_number=5, source_addr="84901234567", registered_delivery=1,
                                          dest_addresses=((1, 1, 1, "84912777020"), (1, 1, 1, "84912777021")),
                                          data_coding=1, short_message=b"Vao http://phish.example/x ngay")))
        got = [read_raw(sock) for _ in range(3)]
        sock.settimeout(0.5)
        with pytest.raises(OSError):            # (socket.timeout: nothing more)
            read_raw(sock)
        resp, receipts = got[0], got[1:]
        assert (resp.command_id, resp.sequence_number, resp.command_status) == (C.SUBMIT_MULTI_RESP, 5, 0)
        assert all(r.command_id == C.DELIVER_SM and b"stat:REJECTD" in r.short_message for r in receipts)
        assert sorted(r.source_addr for r in receipts) == ["84912777020", "84912777021"]
        assert h.sim.submits() == []


def test_smsc_without_transceiver_binds_gets_transmitter_and_receiver(pipe):
    h = ProxyHarness(pipe, accounts=("esme1:secret",))
    h.start_loop()
    from engine.smpp_proxy.simulator import SmscSimulator
    h.sim = SmscSimulator(receipt_delay=0.05)
    h.sim.refuse_transceiver = True
    h.call(h.sim.start("127.0.0.1", 0))
    from engine.smpp_proxy.accounts import account_from_arg
    from engine.smpp_proxy.server import SmppProxy
    h.settings.smsc = [f"127.0.0.1:{h.sim.port}"]
    h.settings.accounts["esme1"] = account_from_arg("esme1:secret")
    h.proxy = SmppProxy(pipe, h.settings, h.vlog)
    h.call(h.proxy.start("127.0.0.1:0"))
    try:
        assert wait(lambda: sorted(l.kind for l in h.proxy.links if l.bound) == ["receiver", "transmitter"], 10)
        c = client(h)
        _, r = send(c, HAM, registered_delivery=1)
        assert r[0].status == 0
        dr = receive(c)                                   # the receipt came in on the receiver link
        assert dr.receipted_message_id.rstrip(b"\x00") == r[0].message_id
        c.disconnect()
    finally:
        h.stop()
