"""A 5656 report in parts whose parts reach different processes sharing one Redis (engine/state/mo_parts.py):
two SmppProxy instances, each with its own link to ONE SMSC simulator, the parts sent on both links. One
verdict line, one report with the whole text, every part answered once -- where each process used to judge
its fragment (a cut report plus a "syntax error" made of the rest). Late parts are not applied again; a
message whose last part never comes is judged with what arrived, by one process."""
import io
import json
import threading

import pytest

from engine.app import build
from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog
from engine.smpp_proxy.simulator import SmscSimulator
from engine.state import install
from engine.state.mo_parts import SharedMoParts
from engine.state.redis_store import RedisStore

from .redis_helpers import redis_server  # noqa: F401
from .test_smpp_proxy import wait

REPORT = ("S 0987654321 Quý khách đã trúng thưởng 50 triệu đồng, vui lòng truy cập http://nhan-qua.example "
          "để nhận quà trước 12h hôm nay")


@pytest.fixture
def url(redis_server):  # noqa: F811
    redis_server.flush()
    return redis_server.url


class Pair(LoopThread):
    def __init__(self, tmp, url, concat_timeout=5.0):
        super().__init__("mo-pair")
        self.tmp, self.url, self.concat_timeout = tmp, url, concat_timeout
        self.proxies, self.logs, self.shared, self.pipes = [], [], [], []

    def start(self):
        self.start_loop()
        self.sim = SmscSimulator(receipt_delay=None)
        self.call(self.sim.start("127.0.0.1", 0))
        for i in range(2):
            self.call(self._proxy(i))
        assert wait(lambda: len([s for s in self.sim.sessions if s.bound]) == 2, 10)
        return self

    async def _proxy(self, i):
        pipe = build(data_dir=self.tmp / f"p{i}", with_model=False)
        s = SmppSettings(concat_timeout=self.concat_timeout)
        s.smsc = [f"127.0.0.1:{self.sim.port}"]
        s.accounts["esme1"] = account_from_arg("esme1:secret")
        buf = io.StringIO()
        proxy = SmppProxy(pipe, s, VerdictLog(buf))
        store = RedisStore(self.url)
        install(pipe, store)
        await store.start()
        shared = SharedMoParts(store, proxy)
        await proxy.start("127.0.0.1:0")
        assert await proxy.wait_upstream(10)
        self.proxies.append(proxy)
        self.logs.append(buf)
        self.shared.append((store, shared))
        self.pipes.append(pipe)

    def send_parts(self, parts, ref=0x31, src="84912000777", data_coding=0x08):
        """parts: [(session index, part number, total, bytes of text in `data_coding`, UCS-2 by default)]."""
        async def send():
            bound = [s for s in self.sim.sessions if s.bound]
            for k, n, total, body in parts:
                s = bound[k]
                s.send(P.DeliverSm(sequence_number=s.conn.next_sequence(), source_addr_ton=1, source_addr=src,
                                   destination_addr="5656", esm_class=C.ESM_UDHI, data_coding=data_coding,
                                   short_message=bytes((5, 0, 3, ref, total, n)) + body))
        self.call(send())

    def verdicts(self):
        for p in self.proxies:
            self.run(p.vlog.flush)
        return [json.loads(x) for b in self.logs for x in b.getvalue().splitlines()]

    def journal_full(self):
        """Every process's report store refuses (a full disk); returns what journal_back puts back."""
        def full(rec):
            raise OSError(28, "No space left on device")
        real = [p.reports.append_many for p in self.pipes]
        for p in self.pipes:
            p.reports.append_many = full
        return real

    def journal_stalled_then_full(self):
        """Every process's report store stalls on its next write until `release` is set, then refuses (a disk
        that stops, then is full); returns (entered, release, what journal_back puts back)."""
        entered, release = threading.Event(), threading.Event()
        real = [p.reports.append_many for p in self.pipes]

        def stalled_then_full(recs):
            entered.set()
            release.wait(20)
            raise OSError(28, "No space left on device")
        for p in self.pipes:
            p.reports.append_many = stalled_then_full
        return entered, release, real

    def journal_back(self, real):
        for p, r in zip(self.pipes, real):
            p.reports.append_many = r

    def reports(self):
        out = []
        for i in range(2):
            f = self.tmp / f"p{i}" / "reports.jsonl"
            if f.exists():
                out += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        return out

    def stop(self):
        async def down():
            for p, (store, shared) in zip(self.proxies, self.shared):
                await p.stop()
                await shared.close()
                await store.close()
            await self.sim.stop()
        try:
            self.call(down())
        finally:
            self.stop_loop()


def _split(text, size=60):
    b = text.encode("utf-16-be")
    chunks = [b[i:i + size * 2] for i in range(0, len(b), size * 2)]
    return chunks


def test_a_report_whose_parts_reach_two_processes_is_one_report_whole(tmp_path, url):
    chunks = _split(REPORT)
    assert len(chunks) == 3
    with Pair(tmp_path, url) as pair:
        pair.send_parts([(0, 1, 3, chunks[0]), (1, 2, 3, chunks[1]), (0, 3, 3, chunks[2])])
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert [r.command_status for r in pair.sim.mo_responses] == [0, 0, 0]
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        v = pair.verdicts()
        assert len(v) == 1 and [h["symbol"] for h in v[0]["hits"]] == ["SPAM_REPORTED"], v
        reps = pair.reports()
        assert len(reps) == 1 and reps[0]["content"] == REPORT.split(" ", 2)[2]
        # the same part again (an SMSC retrying): acknowledged, not a second report
        pair.send_parts([(1, 2, 3, chunks[1])])
        assert wait(lambda: len(pair.sim.mo_responses) == 4, 5) and pair.sim.mo_responses[3].command_status == 0
        assert len(pair.reports()) == 1 and len(pair.verdicts()) == 1


def test_a_dnc_registration_in_parts_with_two_readings_is_recorded(tmp_path, url):
    """Parts whose text has two readings (data_coding 0x0E, KS C 5601: read as EUC-KR and as Latin-1) are put
    together reading by reading, as in one process: the stored text was both readings a line apart, so
    'DK D' + 'NC' read 'DK D\nDK DNC\nNC', a syntax error, and the registration was lost."""
    with Pair(tmp_path, url) as pair:
        pair.send_parts([(0, 1, 2, b"DK D"), (1, 2, 2, b"NC")], ref=0x33, src="84912000778", data_coding=0x0E)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert [r.command_status for r in pair.sim.mo_responses] == [0, 0]
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        v = pair.verdicts()
        assert [h["symbol"] for h in v[0]["hits"]] == ["DNC_REGISTERED"], v
        assert any(p.lists.in_dnc(84912000778, "S") and p.lists.in_dnc(84912000778, "V") for p in pair.pipes)


def test_part_text_round_trips_through_the_hash():
    from engine.smpp_proxy.codec.text import TwoReadings
    from engine.state.mo_parts_scripts import stored_text as _enc, text_of as _dec
    for t in ("", "abc", "\x00x", "\x01\x00y", "Quý khách", TwoReadings("a\x00:b", "c:\x00"), TwoReadings("", "z"),
              TwoReadings("Tiếng", "Ti\xe1\xba\xbfng")):
        back = _dec(_enc(t))
        assert back == t and type(back) is type(t)
        if type(t) is TwoReadings:
            assert (back.shown, back.meant) == (t.shown, t.meant)


def test_a_message_whose_last_part_never_comes_is_judged_once_with_what_arrived(tmp_path, url):
    chunks = _split(REPORT)
    with Pair(tmp_path, url, concat_timeout=0.5) as pair:
        pair.send_parts([(0, 1, 3, chunks[0]), (1, 2, 3, chunks[1])], ref=0x32)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        assert len(pair.verdicts()) == 1 and "MO x2/3" in pair.verdicts()[0]["pdu"]
        rep = pair.reports()
        assert len(rep) == 1 and rep[0]["content"].startswith("Quý khách") and len(rep[0]["content"]) > 60


def test_a_report_not_recorded_is_asked_again_and_recorded_whole(tmp_path, url):
    chunks = _split(REPORT)
    with Pair(tmp_path, url) as pair:
        real = pair.journal_full()
        pair.send_parts([(0, 1, 3, chunks[0]), (1, 2, 3, chunks[1]), (0, 3, 3, chunks[2])], ref=0x33)
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert sorted(r.command_status for r in pair.sim.mo_responses) == [0, 0, C.ESME_RX_T_APPN]
        assert pair.reports() == []
        pair.journal_back(real)                 # room again; the SMSC delivers the completing part again
        pair.send_parts([(1, 3, 3, chunks[2])], ref=0x33)
        assert wait(lambda: len(pair.sim.mo_responses) == 4, 5) and pair.sim.mo_responses[3].command_status == 0
        assert wait(lambda: len(pair.reports()) == 1, 5)
        assert pair.reports()[0]["content"] == REPORT.split(" ", 2)[2]


def test_a_report_not_recorded_waits_whole_past_the_other_processes_timers(tmp_path, url):
    """Review: another process's concat_timeout took the put-back parts and judged a cut report."""
    import time
    chunks = _split(REPORT)
    with Pair(tmp_path, url, concat_timeout=0.3) as pair:
        real = pair.journal_full()
        pair.send_parts([(0, 1, 3, chunks[0]), (1, 2, 3, chunks[1]), (0, 3, 3, chunks[2])], ref=0x34)
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert sorted(r.command_status for r in pair.sim.mo_responses) == [0, 0, C.ESME_RX_T_APPN]
        time.sleep(0.8)                                  # every timer has fired
        pair.journal_back(real)
        pair.send_parts([(1, 3, 3, chunks[2])], ref=0x34)
        assert wait(lambda: len(pair.reports()) == 1, 5)
        assert pair.reports()[0]["content"] == REPORT.split(" ", 2)[2]
        # (the verdict line is written once the report is on disk, by the loop after the writer)
        assert wait(lambda: [v["action"] for v in pair.verdicts()] == ["refuse", "allow"], 5)


def test_completing_part_sent_again_while_its_report_is_written_is_not_acknowledged(tmp_path, url):
    """The completing part's answer waits for the fsync (seconds on a stalling disk); the SMSC sends the part
    again. That copy finds the `done` mark and is answered 0 ('not applied again'). The write then fails:
    the original copy gets ESME_RX_T_APPN, but the SMSC has a 0 for the part and never delivers it again;
    the parts wait under `wait` for an hour and expire: the report is lost, nothing told anyone.
    (mo.py's own reassembly answers such a copy ESME_RX_T_APPN: WRITING.)"""
    chunks = _split(REPORT)
    with Pair(tmp_path, url) as pair:
        entered, release, _ = pair.journal_stalled_then_full()
        pair.send_parts([(0, 1, 3, chunks[0]), (0, 2, 3, chunks[1]), (0, 3, 3, chunks[2])], ref=0x35)
        assert entered.wait(5)                                  # the report's write is under way, stalled
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        pair.send_parts([(0, 3, 3, chunks[2])], ref=0x35)       # the SMSC sends the completing part again
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        resent = pair.sim.mo_responses[2].command_status
        release.set()
        assert wait(lambda: len(pair.sim.mo_responses) == 4, 5)
        original = pair.sim.mo_responses[3].command_status
        assert original == C.ESME_RX_T_APPN and pair.reports() == []
        # nothing of it is recorded, so no copy of the completing part may be acknowledged
        assert resent == C.ESME_RX_T_APPN, f"resent completing part answered {resent}: the SMSC never redelivers it"


def test_completing_part_sent_again_to_another_process_while_its_report_is_written_is_not_acknowledged(tmp_path,
                                                                                                         url):
    """The copy lands on the other process (another worker's bind): the `done` mark says the command is being
    written ('w'), so that process asks for it again too (it used to answer 0 'not applied again', and the report
    was lost when the write failed); once the report is recorded, a copy is acknowledged anywhere."""
    chunks = _split(REPORT)
    with Pair(tmp_path, url) as pair:
        entered, release, real = pair.journal_stalled_then_full()
        pair.send_parts([(0, 1, 3, chunks[0]), (0, 2, 3, chunks[1]), (0, 3, 3, chunks[2])], ref=0x36)
        assert entered.wait(5)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        pair.send_parts([(1, 3, 3, chunks[2])], ref=0x36)       # the copy, to the other process
        assert wait(lambda: len(pair.sim.mo_responses) == 3, 5)
        assert pair.sim.mo_responses[2].command_status == C.ESME_RX_T_APPN
        release.set()
        assert wait(lambda: len(pair.sim.mo_responses) == 4, 5)
        assert pair.sim.mo_responses[3].command_status == C.ESME_RX_T_APPN and pair.reports() == []
        pair.journal_back(real)
        pair.send_parts([(1, 3, 3, chunks[2])], ref=0x36)       # delivered again: recorded whole, once
        assert wait(lambda: len(pair.sim.mo_responses) == 5 and len(pair.reports()) == 1, 10)
        assert pair.sim.mo_responses[4].command_status == 0
        pair.send_parts([(0, 3, 3, chunks[2])], ref=0x36)       # a late copy elsewhere: acknowledged, not again
        assert wait(lambda: len(pair.sim.mo_responses) == 6, 5)
        assert pair.sim.mo_responses[5].command_status == 0 and len(pair.reports()) == 1


def test_a_report_whose_first_part_comes_after_the_timeout_is_recorded_whole(tmp_path, url):
    """Its second part alone, judged at concat_timeout, is a syntax error (nothing in force): the first part, late
    and on the other process, has the whole text judged (it was acknowledged and the report lost: the done mark
    said the message was recorded). The subscriber is told the syntax error once, then the report."""
    chunks = _split(REPORT)
    sc = lambda: [p for p in pair.sim.submits() if p.destination_addr == "84912000777"]    # noqa: E731
    with Pair(tmp_path, url, concat_timeout=0.5) as pair:
        pair.send_parts([(0, 2, 2, b"".join(chunks[1:]))], ref=0x34)
        assert wait(lambda: len(pair.verdicts()) == 1 and len(sc()) == 1, 5)
        assert [h["symbol"] for h in pair.verdicts()[0]["hits"]] == ["SHORTCODE_SYNTAX_ERROR"]
        pair.send_parts([(1, 1, 2, chunks[0])], ref=0x34)
        assert wait(lambda: len(pair.reports()) == 1, 5), pair.verdicts()
        assert pair.reports()[0]["content"] == REPORT.split(" ", 2)[2]
        assert wait(lambda: len(sc()) == 2, 5)
        v = pair.verdicts()
        assert [[h["symbol"] for h in x["hits"]] for x in v] == [["SHORTCODE_SYNTAX_ERROR"], ["SPAM_REPORTED"]]
        assert v[1].get("late") is True and v[1]["concat"] == v[0]["concat"]
        assert [r.command_status for r in pair.sim.mo_responses] == [0, 0]
