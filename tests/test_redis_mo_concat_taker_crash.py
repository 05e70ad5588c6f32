"""A process killed -9 while it writes the command of a 5656 message in parts it completed in Redis
(engine/state/mo_parts.py; probe h_crash: `serve --workers 2 --state redis://`, a worker killed -9 under a load of
`DK DNC` in 2 and 3 parts: 3 messages of ~300 in 8 rounds). Its completing part had no answer, so the SMSC delivers
it again; the other parts were acknowledged. The taker had taken the parts out of the server and left the mark
'being written' for KEEP (120 s): every copy of the completing part was answered ESME_RX_T_APPN until the mark
expired, then stored alone as the first part of a new message (its acknowledged parts never come again) and judged
at concat_timeout as a fragment: the registration lost, the subscriber sent a syntax error. Now the parts stay in
the server until the command is recorded, and a part that comes once the taker's lease (LEASE) has passed takes
the message over and has it judged whole."""
from engine.smpp_proxy.codec import constants as C

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_mo_concat import Pair, url  # noqa: F401
from .test_smpp_proxy import wait

SRC = "84912000781"


def _dies_while_writing(proxy) -> list:
    """`proxy` takes messages and never writes their commands (killed -9 right after the take: nor renews its
    lease); what it took."""
    took = []
    proxy._judge_mo = lambda *a, **k: took.append(a)
    proxy.shared_mo._renew_due = lambda: None
    return took


def test_a_part_sent_again_after_the_taker_died_has_the_whole_message_judged(tmp_path, url, monkeypatch):  # noqa: F811
    import engine.state.mo_parts as M
    monkeypatch.setattr(M, "LEASE", 0.0, raising=False)         # (60 s: the taker's write is long over by then)
    # (a copy's take-over, not a sweep's: that is test_redis_mo_concat_takeover.py's)
    monkeypatch.setattr(M, "SWEEP_EVERY", 600.0, raising=False)
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        took = _dies_while_writing(pair.proxies[1])
        pair.send_parts([(0, 1, 2, b"DK D")], ref=0x37, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5) and pair.sim.mo_responses[0].command_status == 0
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x37, src=SRC, data_coding=1)      # completes it on process 1
        assert wait(lambda: took, 5)
        assert len(pair.sim.mo_responses) == 1                  # (the dead process never answers it)
        pair.send_parts([(0, 2, 2, b"NC")], ref=0x37, src=SRC, data_coding=1)      # the SMSC delivers it again
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert pair.sim.mo_responses[1].command_status == 0, \
            f"answered {pair.sim.mo_responses[1].command_status:#x}: the message is stuck with its dead taker"
        v = pair.verdicts()
        assert [[h["symbol"] for h in x["hits"]] for x in v] == [["DNC_REGISTERED"]], v
        assert pair.pipes[0].lists.in_dnc(int(SRC), "S")


def test_a_part_sent_again_while_the_taker_still_writes_is_asked_for_again(tmp_path, url):  # noqa: F811
    """Within the lease the taker is taken to be writing: the copy is asked for again, never judged twice."""
    with Pair(tmp_path, url, concat_timeout=30.0) as pair:
        took = _dies_while_writing(pair.proxies[1])
        pair.send_parts([(0, 1, 2, b"DK D")], ref=0x38, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 1, 5)
        pair.send_parts([(1, 2, 2, b"NC")], ref=0x38, src=SRC, data_coding=1)
        assert wait(lambda: took, 5)
        pair.send_parts([(0, 2, 2, b"NC")], ref=0x38, src=SRC, data_coding=1)
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert pair.sim.mo_responses[1].command_status == C.ESME_RX_T_APPN
        assert pair.verdicts() == []
