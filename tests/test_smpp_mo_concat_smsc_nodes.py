"""The parts of one concatenated MO delivered by two nodes of one SMSC (two `--smsc` addresses, one message id
space: a cluster whose nodes share the load, each part of a handset's message routed on its own) are one message:
a 5656 report in two parts through the two nodes is one report with its whole content. Before, the parts were put
together per link address: each was judged alone at concat_timeout, a cut report plus a "Sai cu phap" reply for
its rest (probed through serve). Links given different `id_space` names (different SMSCs) stay apart."""
import io
import json

import pytest

from engine.app import build
from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import DEFAULT_REPLIES, SmppSettings, account_from_arg
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.server import SmppProxy
from engine.smpp_proxy.simulator import SmscSimulator
from engine.verdictlog import VerdictLog

from .test_smpp_proxy import wait

REPORTER = "84911000009"


class TwoNodes(LoopThread):
    """One SmppProxy linked to two SMSC simulators (the nodes); `id_spaces`: each link's id_space."""

    def __init__(self, tmp, id_spaces=("", "")):
        super().__init__("mo-two-nodes")
        self.tmp, self.id_spaces = tmp, id_spaces

    def start(self):
        self.start_loop()
        self.sims = [SmscSimulator(receipt_delay=None) for _ in self.id_spaces]
        for s in self.sims:
            self.call(s.start("127.0.0.1", 0))
        self.pipe = build(data_dir=self.tmp / "data", with_model=False)
        st = SmppSettings(concat_timeout=1.0)
        st.smsc = [f"127.0.0.1:{s.port}" for s in self.sims]
        for a, space in zip(st.smsc, self.id_spaces):
            st.smsc_links[a] = {"id_space": space}
        st.accounts["esme1"] = account_from_arg("esme1:secret")
        self.buf = io.StringIO()
        self.proxy = SmppProxy(self.pipe, st, VerdictLog(self.buf))
        self.call(self.proxy.start("127.0.0.1:0"))
        assert wait(lambda: all(any(x.bound for x in s.sessions) for s in self.sims), 10)
        return self

    def part(self, node, n, total, text, ref=0x41):
        sim = self.sims[node]
        pdu = P.DeliverSm(source_addr_ton=1, source_addr_npi=1, source_addr=REPORTER, destination_addr="5656",
                          esm_class=C.ESM_UDHI, data_coding=0, short_message=bytes((5, 0, 3, ref, total, n)) + text)
        assert self.run(sim.send_deliver, pdu)

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

    def stop(self):
        try:
            self.call(self.proxy.stop())
            for s in self.sims:
                self.call(s.stop())
        finally:
            self.stop_loop()


@pytest.fixture
def nodes(tmp_path):
    made = []

    def make(**kw):
        made.append(TwoNodes(tmp_path, **kw).start())
        return made[-1]
    yield make
    for n in made:
        n.stop()


def test_a_report_in_parts_through_two_nodes_of_one_smsc_is_one_report(nodes):
    n = nodes()
    n.part(0, 1, 2, b"S 0987000555 lua dao vay tien ")
    n.part(1, 2, 2, b"nhanh lai suat thap")
    assert wait(lambda: n.reports(), 5)
    assert [(r["reported"], r["content"]) for r in n.reports()] == \
        [("+84987000555", "lua dao vay tien nhanh lai suat thap")]
    assert wait(lambda: n.replies() == [DEFAULT_REPLIES["SPAM_REPORTED"]], 5)
    assert n.answered() == [0, 0]
    assert [line["pdu"] for line in n.lines()] == ["DeliverSm MO x2/2"]


def test_parts_through_smscs_of_different_id_spaces_stay_apart(nodes):
    n = nodes(id_spaces=("a", "b"))
    n.part(0, 1, 2, b"S 0987000556 lua dao ")
    n.part(1, 2, 2, b"vay tien")
    assert wait(lambda: len(n.lines()) == 2, 5)
    assert sorted(line["pdu"] for line in n.lines()) == ["DeliverSm MO x1/2", "DeliverSm MO x1/2"]
