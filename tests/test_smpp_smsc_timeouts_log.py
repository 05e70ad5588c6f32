"""Requests the SMSC let time out, or left unanswered when its link was lost, are logged together, with what their
ESMEs were told. A hung SMSC with a window of 200 printed 200 warnings in one millisecond, "SMSC … did not answer
seq 317 within 10.0s" each, none saying that the ESMEs had been answered ESME_RSYSERR (outcome unknown: a resubmit
may duplicate the message)."""
import logging

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)


def test_submits_timed_out_together_are_one_warning_naming_the_esmes_answer(pipe, caplog):
    caplog.set_level(logging.WARNING, logger="telfilter.smpp")
    with ProxyHarness(pipe, settings=SmppSettings(smsc_response_timeout=0.5, smsc_stall_after=5)) as h:
        h.sim.stall = True
        s, _ = raw_session(h)
        s.sendall(b"".join(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567",
                                             destination_addr="84912345678", short_message=b"see you at %d" % seq))
                           for seq in range(2, 7)))
        got = [read_raw(s) for _ in range(5)]
        assert [(r.sequence_number, r.command_status) for r in got] == [(q, C.ESME_RSYSERR) for q in range(2, 7)]
        lines = [r.getMessage() for r in caplog.records if "did not answer" in r.getMessage()]
        # (one tick takes them all, unless one fell between their expiries, microseconds apart)
        assert 1 <= len(lines) < 5, lines
        assert all("ESME_RSYSERR" in line and "outcome unknown" in line for line in lines), lines
        assert "did not answer 5 request(s) within 0.5s" in lines[0] or len(lines) > 1, lines
        s.close()


def test_a_lost_link_says_how_many_requests_it_left_unanswered(pipe, caplog):
    """An SMSC that closed its connection (its process died) with submits in flight: each ESME was answered
    ESME_RSYSERR at once, and the warning said only "link lost after 2.2s bound"."""
    caplog.set_level(logging.WARNING, logger="telfilter.smpp")
    with ProxyHarness(pipe) as h:
        h.sim.stall = True
        s, _ = raw_session(h)
        s.sendall(b"".join(encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567",
                                             destination_addr="84912345678", short_message=b"see you at %d" % seq))
                           for seq in range(2, 5)))
        assert wait(lambda: len(h.sim.held) == 3)
        h.run(lambda: [x.transport.close() for x in h.sim.sessions])
        got = [read_raw(s) for _ in range(3)]
        assert [(r.sequence_number, r.command_status) for r in got] == [(q, C.ESME_RSYSERR) for q in range(2, 5)]
        assert wait(lambda: "link lost" in caplog.text)
        line = next(r.getMessage() for r in caplog.records if "link lost" in r.getMessage())
        assert "3 request(s) unanswered" in line and "ESME_RSYSERR" in line, line
        s.close()
