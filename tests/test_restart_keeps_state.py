"""Everything confirmed before a restart is there after it, in one place (what an in-place upgrade relies on:
stop the old serve, start the new one on the same data dir; README, Operating it, Upgrading): a 5656 DNC
registration refuses an ad, an advertiser's caps still count the ads of the last 24 h, a receipt for a message
sent before the restart reaches its ESME (message-id map), a receipt held before it is delivered (held-receipts
journal), 5656 reports are listed (reports.jsonl) and a 5656 report whose first part came before the restart is
joined with its second (mo_parts journal). Once after SIGTERM (snapshots, clean stop files) and once after
kill -9 (journals alone). Each piece also has its own tests (test_durable_*, test_held_receipts_journal,
test_smpp_msgids, test_mo_parts_journal, test_shortcode_parse_and_journal); this one runs them together
through two real `serve` processes."""
import json
import signal
import time

import pytest

from engine.smpp_proxy.codec import Tlv
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode_text
from engine.smpp_proxy.codec import pdu as P

from .conftest import run_cli
from .durable_helpers import _Node
from .test_serve import wait_for

AD = "[QC] Uu dai {}. Tu choi: TC gui 5656"
CAPPED, DNC, OTHER, REPORTER = "84912000444", "84912000555", "84912000449", "84912000667"
# a concatenated message of 2 parts, reference 0x42, before the part number (3GPP TS 23.040 9.2.3.24.1)
UDH = bytes([5, 0, 3, 0x42, 2])


class _Esme:
    """An smpplib ESME bound as account t that answers every deliver_sm and keeps it."""

    def __init__(self, port, bind):
        import smpplib.client
        self.c = smpplib.client.Client("127.0.0.1", port, timeout=0.5)
        self.c.connect()
        getattr(self.c, "bind_" + bind)(system_id="t", password="pw")
        self.delivered = []

    def pump(self, until=None, timeout=5.0):
        import smpplib.smpp
        end = time.time() + timeout
        while time.time() < end:
            try:
                pdu = self.c.read_pdu()
            except OSError:                 # the read timed out: nothing yet
                continue
            if pdu.command == "deliver_sm":
                self.delivered.append(pdu)
                resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.c)
                resp.sequence = pdu.sequence        # (make_pdu's sequence= is not kept: it numbers its own)
                self.c.send_pdu(resp)
            elif until is not None and pdu.command == until:
                return pdu
            if until is None and self.delivered:
                return None
        return None

    def submit(self, text, dest, src="SHOPABC", ton=5, dlr=0):
        import smpplib.gsm
        parts, enc, esm = smpplib.gsm.make_parts(text)
        self.c.send_message(source_addr_ton=ton, source_addr=src, dest_addr_ton=1, destination_addr=dest,
                            short_message=parts[0], data_coding=enc, esm_class=esm, registered_delivery=dlr)
        r = self.pump("submit_sm_resp")
        assert r is not None, "no submit_sm_resp"
        return r.status, r.message_id.decode() if r.message_id else None

    def receipts(self):
        return [d.receipted_message_id.decode() for d in self.delivered if d.receipted_message_id]

    def close(self):
        self.c.unbind()
        self.c.disconnect()


def _mo(sim, source, text, udh=b""):
    """A deliver_sm to 5656 from the SMSC; its deliver_sm_resp's command_status."""
    dc, body = encode_text(text)
    n = len(sim.sim.mo_responses)
    pdu = P.DeliverSm(sequence_number=0, source_addr_ton=1, source_addr_npi=1, source_addr=source,
                      destination_addr="5656", data_coding=dc, short_message=udh + body,
                      esm_class=C.ESM_UDHI if udh else 0)
    assert sim.run(sim.sim.send_deliver, pdu)
    assert wait_for(lambda: len(sim.sim.mo_responses) > n, 10), "5656 deliver_sm not answered"
    return sim.sim.mo_responses[n].command_status


def _receipt(sim, mid, esme_source, recipient):
    """Send the SMSC's delivery receipt for `mid` (the simulator's own receipts with receipt_delay None: sent when
    the test says); a function that waits for its deliver_sm_resp and returns its command_status."""
    n = len(sim.sim.mo_responses)
    body = f"id:{mid} sub:001 dlvrd:001 submit date:2612031200 done date:2612031200 stat:DELIVRD err:000 text:"
    pdu = P.DeliverSm(sequence_number=0, source_addr_ton=1, source_addr_npi=1, source_addr=recipient,
                      dest_addr_ton=1, dest_addr_npi=1, destination_addr=esme_source,
                      esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=body.encode(),
                      tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"), Tlv(C.TAG_MESSAGE_STATE, b"\x02")))
    assert sim.run(sim.sim.send_deliver, pdu)

    def answer():
        assert wait_for(lambda: len(sim.sim.mo_responses) > n, 10), "receipt not answered"
        return sim.sim.mo_responses[n].command_status
    return answer


def _hits(log, recipient):
    # (whole lines: read while serve appends, and a write is not atomic for a reader past a page boundary)
    lines = [json.loads(x) for x in log.read_text().split("\n")[:-1]] if log.exists() else []
    return [[h["symbol"] for h in v["hits"]] for v in lines if v.get("recipient") == recipient]


@pytest.mark.parametrize("stop", ["sigterm", "kill9"])
def test_what_was_confirmed_before_a_restart_is_in_force_after_it(tmp_path, stop):
    log = tmp_path / "verdicts.jsonl"
    node = _Node(tmp_path, log=log)
    node.sim.sim.receipt_delay = None
    data = node.data
    try:
        p, port = node.start()
        e = _Esme(port, "transmitter")      # receipts for it are held: it has no receiver bind
        assert [e.submit(AD.format(i), CAPPED)[0] for i in range(3)] == [0, 0, 0]
        assert _mo(node.sim, DNC, "DK DNC") == 0
        assert _mo(node.sim, "84912000666", "S 0987654321 vay tien nhanh lai suat thap") == 0
        assert _mo(node.sim, REPORTER, "S 0987000111 khuyen mai lon ", UDH + b"\x01") == 0
        st_a, mid_a = e.submit("Ma OTP cua ban la 123456", "84912000777", src="84988000001", ton=1, dlr=1)
        st_b, mid_b = e.submit("Ma OTP cua ban la 654321", "84912000778", src="84988000001", ton=1, dlr=1)
        assert (st_a, st_b) == (0, 0) and mid_a and mid_b
        assert _receipt(node.sim, mid_b, "84988000001", "84912000778")() == 0    # held, on disk before this 0
        e.close()
        if stop == "sigterm":
            p.send_signal(signal.SIGTERM)
            assert p.wait(30) == 0
        else:
            # the state journal is flushed every 0.25 s and the message-id log every 0.05 s (README, Durability):
            # past both, a kill -9 loses nothing confirmed
            assert wait_for(lambda: any(f.stat().st_size for f in (data / "state").glob("journal.*")), 5)
            assert wait_for(lambda: any(mid_a.encode() in f.read_bytes()
                                        for f in (data / "smpp").glob("message_ids.log.*")), 5)
            time.sleep(0.6)
            p.send_signal(signal.SIGKILL)
            p.wait(10)

        p, port = node.start()
        e = _Esme(port, "transceiver")
        e.pump(timeout=5)
        assert e.receipts() == [mid_b], "the receipt held before the restart was not delivered after it"
        answer = _receipt(node.sim, mid_a, "84988000001", "84912000777")
        assert wait_for(lambda: e.pump(timeout=0.2) or mid_a in e.receipts(), 5), \
            "the receipt of a message sent before the restart did not reach its ESME"
        assert answer() == 0
        assert e.submit(AD.format("dnc"), DNC)[0] != 0, "an ad to a number registered DNC before the restart went"
        assert e.submit(AD.format("4th"), CAPPED)[0] != 0, "the 4th ad within 24 h went: the cap forgot the first 3"
        assert e.submit(AD.format("other"), OTHER)[0] == 0      # the same ad to another recipient goes
        assert _mo(node.sim, REPORTER, "goi 0987000111 ngay hom nay", UDH + b"\x02") == 0
        e.close()
        # the verdict log is written by its own thread, flushed every 50 ms
        assert wait_for(lambda: len(_hits(log, OTHER)) == 1, 5)
        assert _hits(log, DNC) == [["AD_TO_DNC"]]
        assert _hits(log, CAPPED) == [[], [], [], ["AD_FREQUENCY_CAP"]]
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        node.stop()
    out = run_cli("reports", "list", "--json", "--no-progress", "--data-dir", data)
    texts = sorted(json.loads(x)["sample"] for x in out.stdout.splitlines())
    assert texts == ["khuyen mai lon goi 0987000111 ngay hom nay", "vay tien nhanh lai suat thap"], out
