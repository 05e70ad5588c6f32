"""`python -m engine.smpp_proxy.simulator`: the SMSC simulator run by hand, for an ESME integrator. Started here as a
process and driven by smpplib's client (an SMPP peer nobody here wrote): a bind with the credentials it was given,
a submit_sm answered with a submit_sm_resp and its receipt delivered, other credentials refused with SMPP 3.4's
statuses; it stops on SIGTERM and on SIGINT (Ctrl-C) with exit 0, saying what it received."""
import signal
import subprocess
import sys

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from engine.smpp_proxy.codec import constants as C

from .conftest import ROOT
from .test_serve import free_port


def _start(*args):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "engine.smpp_proxy.simulator", "--port", str(port), *args],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if f"SMSC simulator listening on 127.0.0.1:{port}" not in line:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"the simulator did not start: {line}{out}{err}")
    return p, port


def _stopped(p, sig):
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return out


def _client(port):
    c = smpplib.client.Client("127.0.0.1", port, timeout=5)
    c.connect()
    return c


@pytest.fixture
def sim():
    p, port = _start("--system-id", "esme1", "--password", "secret", "--id-format", "decimal")
    try:
        yield p, port
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_an_esme_binds_submits_and_gets_its_answer_and_receipt(sim):
    p, port = sim
    c = _client(port)
    try:
        c.bind_transceiver(system_id="esme1", password="secret")
        c.send_message(source_addr_ton=1, source_addr="84912345678", dest_addr_ton=1, destination_addr="84987654321",
                       short_message=b"hello", registered_delivery=1)
        resp = c.read_pdu()
        assert resp.command == "submit_sm_resp" and resp.status == 0 and resp.message_id == b"1"
        receipt = c.read_pdu()
        assert receipt.command == "deliver_sm" and receipt.receipted_message_id == b"1"
        assert b"id:1 " in receipt.short_message and b"stat:DELIVRD" in receipt.short_message
        c.unbind()
    finally:
        c.disconnect()
    out = _stopped(p, signal.SIGTERM)
    assert "received 1 BindTransceiver, 1 SubmitSm, 1 Unbind; 1 receipts sent" in out, out


@pytest.mark.parametrize("system_id, password, status", [("esme2", "secret", C.ESME_RINVSYSID),
                                                         ("esme1", "wrong", C.ESME_RINVPASWD)])
def test_other_credentials_are_refused_and_ctrl_c_stops_it(sim, system_id, password, status):
    p, port = sim
    c = _client(port)
    try:
        with pytest.raises(smpplib.exceptions.PDUError) as e:
            c.bind_transmitter(system_id=system_id, password=password)
        assert e.value.args[1] == status
    finally:
        c.disconnect()
    assert "received 1 BindTransmitter; 0 receipts sent" in _stopped(p, signal.SIGINT)


def test_it_stops_by_itself_after_seconds_and_refuses_bad_arguments():
    p, _ = _start("--seconds", "0.5", "--no-receipts")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "stopped after" in out and "received nothing" in out, err
    r = subprocess.run([sys.executable, "-m", "engine.smpp_proxy.simulator", "--system-id", "x"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--system-id and --password go together" in r.stderr
    r = subprocess.run([sys.executable, "-m", "engine.smpp_proxy.simulator", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--receipt-delay" in r.stdout and "loopback" in r.stdout


def _raw_answers(port, *pdus):
    """Send `pdus` on one raw connection (smpplib will not send a submit_sm before a bind or on a receiver bind: it
    checks its own state) and read one answer each."""
    import socket
    import struct
    from engine.smpp_proxy.codec.pdu import decode, encode
    got = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for pdu in pdus:
            sock.sendall(encode(pdu))
            head = b""
            while len(head) < 4:
                head += sock.recv(4 - len(head))
            body = b""
            while len(body) < struct.unpack(">I", head)[0] - 4:
                body += sock.recv(65536)
            got.append(decode(head + body))
    return got


def test_a_submit_before_a_bind_or_on_a_receiver_bind_is_refused_invbndsts(sim):
    """SMPP 3.4 §2.3 table 2-1: submit_sm goes on a transmitter or transceiver bind only. An ESME that submits before
    its bind (which skipped the credentials) or bound as a receiver is answered ESME_RINVBNDSTS, as an SMSC answers."""
    from engine.smpp_proxy.codec import pdu as P
    p, port = sim
    sm = dict(source_addr_ton=1, source_addr="84912345678", dest_addr_ton=1, destination_addr="84987654321",
              short_message=b"hello", registered_delivery=1)
    [resp] = _raw_answers(port, P.SubmitSm(sequence_number=1, **sm))
    assert resp.command_id == C.SUBMIT_SM_RESP and resp.command_status == C.ESME_RINVBNDSTS
    bind, resp = _raw_answers(port, P.BindReceiver(sequence_number=1, system_id="esme1", password="secret"),
                              P.SubmitSm(sequence_number=2, **sm))
    assert bind.command_status == 0
    assert resp.command_id == C.SUBMIT_SM_RESP and resp.command_status == C.ESME_RINVBNDSTS
    assert "0 receipts sent" in _stopped(p, signal.SIGTERM)
