"""A message goes to an SMSC link that can take it *now*, decided before it is judged: with no room
the ESME gets ESME_RTHROTTLED and the message is neither judged, counted nor logged, so its retries
are not held against it; a concatenated message goes whole through one link or not at all."""
import io
import json
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import GOOD


def _sm(seq, text, dest="84912345678", **kw):
    return encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr=dest, short_message=text, **kw))


def test_a_throttled_message_is_not_judged_so_its_retries_are_not_a_flood(pipe):
    buf = io.StringIO()
    with ProxyHarness(pipe, settings=SmppSettings(smsc_window=1), verdict_log=VerdictLog(buf)) as h:
        h.sim.answer_delay = 1.0
        s, _ = raw_session(h)
        s.sendall(_sm(2, b"another message holding the only window slot", dest="84912349999"))
        time.sleep(0.1)
        text = b"Your parcel arrives today between 2 and 4pm"
        for seq in range(3, 8):                        # five tries while the SMSC window is full
            s.sendall(_sm(seq, text))
            r = read_raw(s)
            assert (r.sequence_number, r.command_status) == (seq, C.ESME_RTHROTTLED)
        assert read_raw(s).sequence_number == 2       # the first message's answer: the slot is free
        s.sendall(_sm(9, text))
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (9, 0)
        h.run(h.vlog.flush)
        lines = [json.loads(x) for x in buf.getvalue().splitlines() if "84912345678" in x]
        assert [x["action"] for x in lines] == ["allow"]
        assert sum(1 for p in h.sim.submits() if p.short_message == text) == 1
        assert h.proxy.stats["upstream_unavailable"] == 5


def _send_parts(s, first_seq):
    """The three parts of one concatenated message, sequence numbers first_seq + 1..3."""
    for part in (1, 2, 3):
        udh = bytes([5, 0, 3, 0x42, 3, part])
        s.sendall(_sm(first_seq + part, udh + b"part %d of the quarterly planning reminder" % part, esm_class=0x40))


def _answers(s, n):
    got = {}
    while len(got) < n:
        r = read_raw(s)
        got[r.sequence_number] = r.command_status
    return got


def test_a_concatenated_message_goes_whole_through_one_link_or_not_at_all(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(smsc_window=3, concat_timeout=2.0)) as h:
        h.sim.answer_delay = 0.5
        s, _ = raw_session(h)
        s.sendall(_sm(2, b"an unrelated single message first", dest="84912349999"))   # one slot busy
        _send_parts(s, 2)
        got = _answers(s, 4)
        assert [got[q] for q in (3, 4, 5)] == [C.ESME_RTHROTTLED] * 3
        time.sleep(0.2)
        assert len(h.sim.submits()) == 1                 # none of the parts went out
        _send_parts(s, 10)                                # the ESME sends them again, with room now
        assert _answers(s, 3) == {11: 0, 12: 0, 13: 0}
        assert wait(lambda: len(h.sim.submits()) == 4)
