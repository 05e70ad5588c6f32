"""What an ESME peer sends cannot take the proxy down or fill its memory or logs: a peer that never
reads its answers is not read either (and is closed after WRITE_STALL); outbind / alert_notification
get a generic_nack; a connection that never bound cannot write the verdict log."""
import io
import socket
import time

import pytest

import engine.smpp_proxy.server as server
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)


def test_a_peer_that_never_reads_is_paused_then_closed(pipe, monkeypatch):
    monkeypatch.setattr(server, "WRITE_STALL", 3.0)
    # (its enquire_links are answered ESME_RTHROTTLED past the rate of other requests: never closed for it here)
    with ProxyHarness(pipe, settings=SmppSettings(other_requests_refused_close=0)) as h:
        s, r = raw_session(h)
        assert r.command_status == 0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # the proxy's kernel buffer small too (it grew to MiBs of answers before its own buffer filled: on a loaded
        # host, where the proxy reads ~100 KB/s, 30 s were not enough to get there)
        h.run(lambda: [x.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                       for x in h.proxy.sessions])
        s.settimeout(0.5)
        chunk = memoryview(b"".join(encode(P.EnquireLink(sequence_number=i)) for i in range(1, 4097)))   # 64 KiB

        def paused():
            return h.run(lambda: any(x.write_paused_at is not None for x in h.proxy.sessions))
        # sent until the proxy stops writing to us (our answers fill its buffer above the high-water mark), however
        # slowly it reads on a loaded machine: a send that times out is tried again, at the offset it reached (a
        # sendall cut by its timeout would break the PDU framing); bounded: 64 MiB, 30 s
        sent, off, end = 0, 0, time.monotonic() + 30
        while sent < (64 << 20) and time.monotonic() < end:
            try:
                n = s.send(chunk[off:])
            except socket.timeout:
                if paused():
                    break
                continue
            except OSError:                              # closed by the proxy already: the stall below says so
                break
            sent += n
            off = (off + n) % len(chunk)
        assert paused() or h.proxy.stats["write_stalled"] == 1, f"never paused after {sent} bytes"
        buffered = h.run(lambda: [x.transport.get_write_buffer_size() for x in h.proxy.sessions if x.transport])
        assert max(buffered) < (1 << 20), buffered      # not reading it: nothing more to answer
        assert wait(lambda: h.proxy.stats["write_stalled"] == 1, timeout=8)
        other, r = raw_session(h)                      # everyone else is served meanwhile
        assert r.command_status == 0


@pytest.mark.parametrize("cid", [C.OUTBIND, C.ALERT_NOTIFICATION])
def test_requests_with_no_response_pdu_get_a_generic_nack(pipe, cid, caplog):
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        for seq in (7, 8):
            s.sendall(encode(P.CLASSES[cid](sequence_number=seq)))
            r = read_raw(s)
            assert (r.command_id, r.sequence_number) == (C.GENERIC_NACK, seq)
            assert r.command_status in (C.ESME_RINVBNDSTS, C.ESME_RINVCMDID)
        assert "Traceback" not in caplog.text


def test_a_connection_that_never_bound_cannot_write_the_verdict_log(pipe):
    buf = io.StringIO()
    with ProxyHarness(pipe, verdict_log=VerdictLog(buf)) as h:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        bad = bytearray(encode(P.SubmitSm(sequence_number=3, source_addr="84901234567",
                                          destination_addr="84912345678", short_message=b"hi")))
        bad[-3] = 200                                  # sm_length past the end of the PDU
        for _ in range(20):
            s.sendall(bytes(bad))
            assert read_raw(s).command_status != 0
        time.sleep(0.1)
        h.run(h.vlog.flush)
        assert buf.getvalue() == ""


def test_unbind_with_submits_in_flight_answers_them_first(pipe):
    with ProxyHarness(pipe) as h:
        h.sim.answer_delay = 0.3
        s, _ = raw_session(h)
        for seq in range(2, 7):
            s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567",
                                        destination_addr="84912345678", short_message=b"see you at %d" % seq)))
        time.sleep(0.05)
        s.sendall(encode(P.Unbind(sequence_number=7)))
        s.sendall(encode(P.SubmitSm(sequence_number=8, source_addr="84901234567",
                                    destination_addr="84912345678", short_message=b"after the unbind")))
        got = [read_raw(s) for _ in range(7)]
        order = [(p.command_id, p.sequence_number, p.command_status) for p in got]
        assert order[0] == (C.SUBMIT_SM_RESP, 8, C.ESME_RINVBNDSTS)      # nothing new after an unbind
        assert order[1:6] == [(C.SUBMIT_SM_RESP, q, 0) for q in range(2, 7)]
        assert order[6] == (C.UNBIND_RESP, 7, 0)
        assert len(h.sim.submits()) == 5


def test_a_receipt_acknowledged_after_the_esmes_unbind_is_not_delivered_again(pipe):
    with ProxyHarness(pipe, receipt_delay=0.05) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    registered_delivery=1, short_message=b"see you")))
        pdus = [read_raw(s), read_raw(s)]
        dr = next(p for p in pdus if p.command_id == C.DELIVER_SM)
        s.sendall(encode(P.Unbind(sequence_number=3)))
        s.sendall(encode(P.DeliverSmResp(sequence_number=dr.sequence_number)))
        assert read_raw(s).command_id == C.UNBIND_RESP
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert wait(lambda: not h.proxy.sessions)      # the session is gone (its receipts would be held then)
        assert h.proxy.held_total == 0 and h.proxy.stats["receipts_held"] == 0


def test_unbind_answers_a_part_still_waiting_for_its_other_parts(pipe):
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        udh = bytes([5, 0, 3, 0x61, 2, 1])
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    esm_class=0x40, short_message=udh + b"part one of two")))
        time.sleep(0.05)
        s.sendall(encode(P.Unbind(sequence_number=3)))
        got = [read_raw(s), read_raw(s)]
        assert [(p.command_id, p.sequence_number) for p in got] == [(C.SUBMIT_SM_RESP, 2), (C.UNBIND_RESP, 3)]


class _HeldVerdicts:
    """A shared state store whose verdicts settle only when the test says (as Redis confirming a commit)."""

    def __init__(self):
        self.waiting, self.busy = [], False

    def begin(self):
        pass

    def settle(self, pipeline, v, done):
        self.waiting.append((v, done))

    def release(self):
        for v, done in self.waiting:
            done(v)
        self.waiting.clear()


def test_unbind_waits_for_a_verdict_the_shared_store_has_not_settled(pipe):
    held = _HeldVerdicts()
    with ProxyHarness(pipe) as h:
        pipe.state.shared = held
        try:
            s, _ = raw_session(h)
            s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567",
                                        destination_addr="84912345678", short_message=b"see you at 5")))
            assert wait(lambda: len(held.waiting) == 1)
            s.sendall(encode(P.Unbind(sequence_number=3)))
            time.sleep(0.2)
            s.settimeout(0.2)
            with pytest.raises(socket.timeout):
                read_raw(s)                                 # nothing yet: the submit is still owed
            s.settimeout(5)
            h.run(held.release)
            got = [read_raw(s), read_raw(s)]
            assert [(p.command_id, p.sequence_number) for p in got] == [(C.SUBMIT_SM_RESP, 2), (C.UNBIND_RESP, 3)]
        finally:
            pipe.state.shared = None


def test_unbind_answers_query_and_cancel_sent_before_it_first(pipe):
    """query_sm / cancel_sm relayed to the SMSC are owed an answer like submits: the unbind_resp waits for them."""
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=1, source_addr="84901234567", destination_addr="84912345678",
                                    short_message=b"see you at 5")))
        mid = read_raw(s).message_id           # (a cancel_sm of an id not forwarded here is refused at once)
        h.sim.answer_delay = 0.3
        s.sendall(encode(P.QuerySm(sequence_number=2, message_id=mid, source_addr="84901234567")))
        s.sendall(encode(P.CancelSm(sequence_number=3, message_id=mid, source_addr="84901234567",
                                    destination_addr="84912345678")))
        s.sendall(encode(P.Unbind(sequence_number=4)))
        got = [read_raw(s) for _ in range(3)]
        assert [(p.command_id, p.sequence_number) for p in got] == [
            (C.QUERY_SM_RESP, 2), (C.CANCEL_SM_RESP, 3), (C.UNBIND_RESP, 4)]


def test_an_smsc_answering_with_another_commands_response_gives_the_esme_rsyserr(pipe):
    with ProxyHarness(pipe) as h:
        h.sim.wrong_answers = True                  # a cancel_sm_resp for each submit_sm
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=5, source_addr="84901234567",
                                    destination_addr="84912345678", short_message=b"see you at 5")))
        r = read_raw(s)
        assert (r.command_id, r.sequence_number, r.command_status) == (C.SUBMIT_SM_RESP, 5, C.ESME_RSYSERR)
        assert h.proxy.stats["smsc_wrong_response"] == 1


def test_a_malformed_response_from_the_esme_is_not_answered(pipe):
    """A response is never acknowledged (SMPP 3.4 §2.3), a malformed one neither: no nack loop between peers."""
    import struct
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        s.sendall(struct.pack(">IIII", 16, 0x80000099, 0, 8))              # an unknown response id
        s.sendall(struct.pack(">IIII", 16, C.BIND_TRANSCEIVER_RESP, 0, 9))  # a bind_resp with no system_id
        s.sendall(encode(P.EnquireLink(sequence_number=10)))
        r = read_raw(s)
        assert (r.command_id, r.sequence_number) == (C.ENQUIRE_LINK_RESP, 10)


def _read_until_eof(s, limit=50):
    got = []
    for _ in range(limit):
        try:
            got.append(read_raw(s))
        except ConnectionError:
            return got
    raise AssertionError("the connection was not closed after its answers")


def test_a_half_closed_esme_gets_the_answers_it_is_owed_then_the_close(pipe):
    # shutdown(SHUT_WR) after the last request (a batch sender's close) is no abort: the peer still
    # reads; it was sent nothing at all once it half-closed with submits at the SMSC (found by a probe)
    with ProxyHarness(pipe) as h:
        h.sim.answer_delay = 0.3
        s, _ = raw_session(h)
        s.sendall(b"".join(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567",
                                             destination_addr="84912345678", short_message=b"see you at %d" % seq))
                           for seq in range(2, 6)) + encode(P.EnquireLink(sequence_number=6)))
        s.shutdown(socket.SHUT_WR)
        got = _read_until_eof(s)
        assert sorted((p.command_id, p.sequence_number, p.command_status) for p in got) == \
            [(C.SUBMIT_SM_RESP, q, 0) for q in range(2, 6)] + [(C.ENQUIRE_LINK_RESP, 6, 0)]
        assert len(h.sim.submits()) == 4
        assert wait(lambda: not h.proxy.sessions)


def test_a_half_closed_esme_is_offered_no_receipt_and_its_unbind_is_answered(pipe):
    with ProxyHarness(pipe, receipt_delay=0.05) as h:
        h.sim.answer_delay = 0.3
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    registered_delivery=1, short_message=b"see you")) + encode(P.Unbind(sequence_number=3)))
        s.shutdown(socket.SHUT_WR)
        got = [(p.command_id, p.sequence_number, p.command_status) for p in _read_until_eof(s)]
        assert got == [(C.SUBMIT_SM_RESP, 2, 0), (C.UNBIND_RESP, 3, 0)]
        assert wait(lambda: h.proxy.held_total == 1)     # its receipt waits for a bind that can answer it


def test_a_bind_half_closed_while_its_password_is_checked_is_answered_then_closed(pipe):
    with ProxyHarness(pipe) as h:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(encode(P.BindTransceiver(sequence_number=1, system_id="esme1", password="secret",
                                           interface_version=0x34)) + encode(P.EnquireLink(sequence_number=2)))
        s.shutdown(socket.SHUT_WR)
        got = sorted((p.command_id, p.sequence_number, p.command_status) for p in _read_until_eof(s))
        assert got == [(C.BIND_TRANSCEIVER_RESP, 1, 0), (C.ENQUIRE_LINK_RESP, 2, 0)]
        assert wait(lambda: not h.proxy.sessions and not h.proxy.binds["esme1"])


@pytest.mark.parametrize("wrong", [P.EnquireLinkResp, P.UnbindResp])
def test_an_answer_of_another_commands_type_acknowledges_no_receipt_and_no_mo(pipe, wrong):
    # an ESME that answers the deliver_sm it was sent with an enquire_link_resp (or unbind_resp) of that
    # sequence_number has not taken it: the receipt was taken as delivered (never offered again) and the SMSC
    # told 0 for an MO the ESME never acknowledged (found by a probe); the SMSC's side has the same check
    with ProxyHarness(pipe, receipt_delay=0.05) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    registered_delivery=1, short_message=b"see you")))
        pdus = [read_raw(s), read_raw(s)]
        dr = next(p for p in pdus if p.command_id == C.DELIVER_SM)
        s.sendall(encode(wrong(sequence_number=dr.sequence_number)))
        assert wait(lambda: h.proxy.held_total == 1)          # held (on disk, so the SMSC has its 0), offered again
        s.settimeout(3)
        again = read_raw(s)                                   # offered again after the back-off
        assert again.command_id == C.DELIVER_SM and again.short_message == dr.short_message
        s.sendall(encode(P.DeliverSmResp(sequence_number=again.sequence_number)))
        assert wait(lambda: h.proxy.held_total == 0)
        h.run(h.sim.send_mo, "84912345678", "84999999", "see you at noon")
        mo = read_raw(s)
        assert mo.command_id == C.DELIVER_SM
        s.sendall(encode(wrong(sequence_number=mo.sequence_number)))
        assert wait(lambda: len(h.sim.mo_responses) == 2)
        assert h.sim.mo_responses[1].command_status == C.ESME_RX_T_APPN     # the SMSC delivers it again
        assert h.proxy.stats["esme_wrong_response"] == 2


def test_a_request_s_command_status_is_null_in_what_the_proxy_relays(pipe):
    # found by the SMPP conformance probe: SMPP 3.4 §3.2 sets command_status to NULL in a request, but a
    # submit_sm sent with 5 went up with 5, and an SMSC's deliver_sm with 0x45 reached the ESME with it:
    # smpplib's read_once raises PDUError on such a deliver_sm and never acknowledges it
    import smpplib.client
    import smpplib.exceptions
    with ProxyHarness(pipe) as h:
        s, _ = raw_session(h)
        raw = bytearray(encode(P.SubmitSm(sequence_number=4, source_addr="84901234567",
                                          destination_addr="84912345678", short_message=b"see you at eight")))
        raw[8:12] = (5).to_bytes(4, "big")
        s.sendall(bytes(raw))
        r = read_raw(s)
        assert (r.command_id, r.command_status, r.sequence_number) == (C.SUBMIT_SM_RESP, 0, 4)
        assert [p.command_status for p in h.sim.submits()] == [0]
        s.close()
        c = smpplib.client.Client("127.0.0.1", h.port, timeout=5)
        got = []
        c.set_message_received_handler(lambda pdu, **k: got.append(pdu.short_message))
        c.connect()
        try:
            c.bind_transceiver(system_id="esme1", password="secret")
            assert wait(lambda: h.run(h.sim.send_deliver, P.DeliverSm(
                command_status=C.ESME_RSUBMITFAIL, source_addr="84912345678", destination_addr="84901234567",
                short_message=b"thanks, see you")))
            try:
                c.read_once(auto_send_enquire_link=False)
            except smpplib.exceptions.PDUError as e:
                pytest.fail(f"the ESME got a request with a non-NULL command_status: {e}")
            assert got == [b"thanks, see you"]
            assert wait(lambda: [m.command_status for m in h.sim.mo_responses] == [0])
        finally:
            c.disconnect()
