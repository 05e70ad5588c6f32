"""The parts of one concatenated MO delivered by two nodes of one SMSC (two `--smsc` addresses, one message id
space: a cluster whose nodes share the load, each part of a handset's message routed on its own) are one message:
a 5656 report in two parts through the two nodes is one report with its whole content. Before, the parts were put
together per link address: each was judged alone at concat_timeout, a cut report plus a "Sai cu phap" reply for
its rest (probed through serve). Links given different `id_space` names (different SMSCs) stay apart."""
import io
import json

from engine.app import build
from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.verdictlog import VerdictLog

from .test_smpp_id_spaces import TwoSmscs
from .test_smpp_proxy import wait

REPORTER = "84911000009"


class Nodes(TwoSmscs):
    """Two SMSC simulators (`spaces`: their links' id_space) and what the proxy made of the parts sent to it."""

    def __init__(self, tmp, spaces):
        self.tmp, self.buf = tmp, io.StringIO()
        super().__init__(build(data_dir=tmp / "data", with_model=False), spaces, VerdictLog(self.buf),
                         receipt_delay=None, concat_timeout=1.0)

    def part(self, node, n, total, text, ref=0x41):
        pdu = P.DeliverSm(source_addr_ton=1, source_addr_npi=1, source_addr=REPORTER, destination_addr="5656",
                          esm_class=C.ESM_UDHI, data_coding=0, short_message=bytes((5, 0, 3, ref, total, n)) + text)
        assert self.run(self.sims[node].send_deliver, pdu)

    def answered(self):
        return [r.command_status for s in self.sims for r in s.mo_responses]

    def replies(self):
        return [p.short_message.decode() for s in self.sims for p in s.submits() if p.destination_addr == REPORTER]

    def reports(self):
        f = self.tmp / "data" / "reports.jsonl"
        return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []

    def lines(self):
        self.run(self.proxy.vlog.flush)
        return [json.loads(x) for x in self.buf.getvalue().splitlines()]


def test_a_report_in_parts_through_two_nodes_of_one_smsc_is_one_report(tmp_path):
    with Nodes(tmp_path, ("", "")) as n:
        n.part(0, 1, 2, b"S 0987000555 lua dao vay tien ")
        n.part(1, 2, 2, b"nhanh lai suat thap")
        assert wait(lambda: n.reports(), 5)
        assert [(r["reported"], r["content"]) for r in n.reports()] == \
            [("+84987000555", "lua dao vay tien nhanh lai suat thap")]
        assert wait(lambda: n.replies() == [DEFAULT_REPLIES["SPAM_REPORTED"]], 5)
        assert n.answered() == [0, 0]
        assert [line["pdu"] for line in n.lines()] == ["DeliverSm MO x2/2"]


def test_parts_through_smscs_of_different_id_spaces_stay_apart(tmp_path):
    with Nodes(tmp_path, ("a", "b")) as n:
        n.part(0, 1, 2, b"S 0987000556 lua dao ")
        n.part(1, 2, 2, b"vay tien")
        assert wait(lambda: len(n.lines()) == 2, 5)
        assert sorted(line["pdu"] for line in n.lines()) == ["DeliverSm MO x1/2", "DeliverSm MO x1/2"]
