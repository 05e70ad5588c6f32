"""What a call's messages cost in work that needs no doing twice (instrbench counts it): each digest a message needs
is computed once (a keyed BLAKE2b of the answered-call memory costs ~2,500 instructions), the memories it keys ending
as they did, and the functions a call's messages go through make no cells (their closures are partials of methods).

An INVITE judged and forwarded hashes its Call-ID into `answered` once (screening._screen keeps it on the message,
forwarding._forward reads it there to note where the INVITE went); a final response hashes its transaction once for
`ringing` and `finals_seen`; a BYE of the answering dialog hashes the tags it needs, the To tag of the caller's BYE
first found. What an INVITE reads is read once: its caller's number (an asserted identity's too) and callee's, its
From tag for its verdict and dialog keys, its verdict's deciding hit and symbols, the next hop."""
import time

import pytest

from engine.app import build
from engine.sip_screen import dialogs, forwarding, responses, screening
from engine.verdict import Action, Hit, Verdict
from tests.sip_helpers import UAC, UAS, invite, offline_screen, sent


@pytest.fixture
def scr(tmp_path):
    return offline_screen(build(data_dir=tmp_path, with_model=False, persist=False))


def _counting(monkeypatch, module, name):
    seen = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *parts: seen.append(parts) or real(*parts))
    return seen


def test_an_invite_hashes_its_call_id_once_and_notes_where_it_went(scr, monkeypatch):
    hashed = []
    for module in (screening, forwarding):
        real = getattr(module, "dialog_digest")
        monkeypatch.setattr(module, "dialog_digest", lambda *parts, real=real: hashed.append(parts[1:]) or real(*parts))
    scr.on_datagram(invite(call_id="h1@127.0.0.1"), UAC)
    (fwd, to), = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    assert hashed.count(("h1@127.0.0.1",)) == 1, hashed
    ent = scr.answered.get(screening.dialog_digest(scr.dialog_key, "h1@127.0.0.1"))
    assert ent is not None and ent[1] is None and ent[3] == UAS[0]     # judged, not answered, sent to the next hop


def test_a_final_hashes_its_transaction_once(scr, monkeypatch):
    scr.on_datagram(invite(call_id="h2@127.0.0.1"), UAC)
    sent(scr)
    assert len(scr.ringing) == 1
    seen = _counting(monkeypatch, responses, "digest")
    scr._invite_final("486", "h2@127.0.0.1 1", "h2@127.0.0.1", UAS)
    assert seen.count(("h2@127.0.0.1 1",)) == 1, seen
    assert not scr.ringing and scr.final_codes == {"486": 1}
    scr._invite_final("486", "h2@127.0.0.1 1", "h2@127.0.0.1", UAS)     # its retransmission: counted once
    assert scr.final_codes == {"486": 1}


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_a_bye_of_the_dialog_ends_the_call_whichever_side_sends_it(scr, monkeypatch, side):
    scr.on_datagram(invite(call_id="h3@127.0.0.1"), UAC)
    sent(scr)
    scr._invite_final("200", "h3@127.0.0.1 1", "h3@127.0.0.1", UAS, lambda: "callee-tag")
    k = dialogs.dialog_digest(scr.dialog_key, "h3@127.0.0.1")
    assert scr.answered.get(k)[1] is not None                           # answered
    scr._call_ended("h3@127.0.0.1", ("other", "not-it"))                # another dialog's BYE: nothing ends
    assert scr.answered.get(k) is not None
    tags = ("abc", "callee-tag") if side == "caller" else ("callee-tag", "abc")
    scr._call_ended("h3@127.0.0.1", tags)
    assert scr.answered.get(k) is None


def test_the_invite_path_makes_no_cells():
    """The functions an INVITE goes through hold no variable a closure or generator of theirs reads: such a variable
    is a cell made at every call (37 an INVITE were ~7,000 instructions; the closures are partials of methods)."""
    from engine.sip_screen import proxying
    path = [proxying.Proxying._request, screening.Screening._screen_once, screening.Screening._screen,
            screening.Screening._settled_unsent, forwarding.Forwarding._forward, forwarding.Forwarding._on_fail,
            forwarding.Forwarding._send, forwarding.Forwarding._permitted, responses.Responses._fast_final]
    assert {f.__qualname__: f.__code__.co_cellvars for f in path if f.__code__.co_cellvars} == {}


def test_a_relayed_200_names_the_dialog_by_its_to_tag(scr):
    """The 200 the fast path relayed (its bytes, read for the To tag only when it answers the call) names the dialog
    whose BYE ends the call."""
    scr.on_datagram(invite(call_id="h4@127.0.0.1"), UAC)
    sent(scr)
    ok = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1;rport\r\n"
          b"From: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>;tag=answered-1\r\n"
          b"Call-ID: h4@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    scr._fast_final("200", b"h4@127.0.0.1 1", UAS, ok)
    ent = scr.answered.get(dialogs.dialog_digest(scr.dialog_key, "h4@127.0.0.1"))
    assert ent[1] is not None and ent[5] == dialogs.dialog_digest(scr.dialog_key, "answered-1")


@pytest.mark.parametrize("caller, extra, number, others", [
    ("0901234567", (), "0901234567", []),
    # an asserted identity (the caller a trunk asserts; its number was read twice: once choosing it, once again)
    ("anonymous", ("P-Asserted-Identity: <tel:+84987000666>",), "+84987000666", []),
    ("anonymous", ("P-Asserted-Identity: <sip:0987000666@h>",), "0987000666", []),
    ("anonymous", ("P-Preferred-Identity: <sip:0987000777@h>",), "0987000777", ["anonymous"])])   # (From first)
def test_an_invite_reads_its_caller_and_callee_as_numbers_once(scr, monkeypatch, caller, extra, number, others):
    """The caller's and callee's numbers (normalise_number) are read once an INVITE: the screen's reading (the
    identity chosen, the verdict key's callee) is the one the call is judged with (Call.nums), not read again."""
    from engine import context
    from engine.sip_screen import identity
    read = []
    for module in (identity, screening, context):
        real = module.normalise_number
        monkeypatch.setattr(module, "normalise_number", lambda raw, *ton, real=real: read.append(raw) or real(raw, *ton))
    scr.on_datagram(invite(caller=caller, callee="0912345678", call_id="h5@127.0.0.1", extra=extra), UAC)
    (fwd, to), = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    assert sorted(read) == sorted([number, "0912345678", *others]), read
    assert scr.answered.get(dialogs.dialog_digest(scr.dialog_key, "h5@127.0.0.1"))[0] == number     # judged as it


def test_a_bye_reads_the_wall_clock_without_a_datetime(scr, monkeypatch):
    """The end of a call is counted at the wall clock's POSIX seconds: no datetime made (and turned into seconds)
    a BYE."""
    ended = []
    real = scr.pipeline.call_ended
    monkeypatch.setattr(scr.pipeline, "call_ended", lambda *a: ended.append(a) or real(*a))
    scr.on_datagram(invite(call_id="h6@127.0.0.1"), UAC)
    sent(scr)
    scr._invite_final("200", "h6@127.0.0.1 1", "h6@127.0.0.1", UAS, lambda: "callee-tag")
    before = time.time()
    monkeypatch.setattr(dialogs, "datetime", None)        # the wall clock's datetime is not read
    scr._call_ended("h6@127.0.0.1", ("abc", "callee-tag"))
    ((caller, at, duration),) = ended
    assert caller == "0901234567" and before <= at <= time.time() and duration >= 0


def test_judging_an_invite_makes_no_cells(scr):
    """No function an INVITE's judging runs (the screen's, the pipeline's, the rules', the lists') holds a variable a
    closure, comprehension or generator of its own reads: such a variable is a cell made at every call (the counters'
    count, the registry's facts, a composite's evidence and the reporters' count made 7 an INVITE)."""
    import sys
    from engine.rules import rule_fns
    scr.on_datagram(invite(call_id="h7@127.0.0.1"), UAC)               # (first use: imports, caches)
    sent(scr)
    ran = set()
    sys.setprofile(lambda frame, event, arg: ran.add(frame.f_code) if event == "call" else None)
    try:
        scr.on_datagram(invite(call_id="h8@127.0.0.1"), UAC)
    finally:
        sys.setprofile(None)
    (fwd, to), = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    names = {c.co_qualname for c in ran}
    assert {"MemoryCounters.count", "_Registry.__get__", "ReportIndex.distinct_reporters"} <= names, names
    ran.add(rule_fns.evidence.__code__)                                 # (run when a composite rule holds)
    assert {c.co_qualname: c.co_cellvars for c in ran if c.co_cellvars and "/engine/" in c.co_filename} == {}


@pytest.mark.parametrize("hits, want", [
    ((), (Action.ALLOW, 603, (), ())),
    ((Hit("TAGGED", 1.0, action=Action.TAG),), (Action.TAG, 603, ("TAGGED",), ("TAGGED",))),
    ((Hit("SEEN", 0.5), Hit("DNC", 0.0, action=Action.DROP, sip_code=608), Hit("CAP", 0.0, action=Action.DROP)),
     (Action.DROP, 608, ("DNC", "CAP"), ("SEEN", "DNC", "CAP"))),
    ((Hit("CAP", 0.0, action=Action.DROP),), (Action.DROP, 603, ("CAP",), ("CAP",))),
    # the deciding hit is the first of the verdict's action, its code 0 the default's; a TAG verdict's DROP-less hits
    ((Hit("A", 0.2), Hit("B", 0.0, action=Action.TAG, sip_code=486), Hit("C", 0.0, action=Action.TAG, sip_code=480)),
     (Action.TAG, 486, ("A", "B", "C"), ("A", "B", "C"))),
    ((Hit("Z", 0.0, action=Action.DROP, sip_code=0), Hit("Y", 0.0, action=Action.DROP, sip_code=607)),
     (Action.DROP, 603, ("Z", "Y"), ("Z", "Y")))])
def test_a_verdict_is_read_into_its_decision_in_one_pass(scr, monkeypatch, hits, want):
    """A verdict's Decision is read in one pass over its hits, neither property (each computed at each read, and a
    generator for the dropping hits) read; the Decision is as the properties make it: the deciding hit's code (else
    the default), the dropping hits' symbols (else all), all the symbols."""
    reads = []
    for name in ("deciding_hit", "symbols"):
        real = getattr(Verdict, name)
        monkeypatch.setattr(Verdict, name, property(lambda v, real=real, name=name: reads.append(name) or real.fget(v)))
    action = max((h.action for h in hits if h.action is not None), default=Action.ALLOW)
    v = Verdict(action, 1.0, hits)
    d = scr._decision(v)
    assert (d.action, d.code, d.drop_symbols, d.symbols, d.score) == (*want, 1.0) and type(d) is screening.Decision
    assert reads == []


def test_an_initial_invite_reads_the_next_hop_once(scr, monkeypatch):
    """An initial INVITE's destination, the configured next hop, is read once (it was read twice: checked, then
    returned), and it is where the INVITE goes."""
    real, reads = scr.next_hop, []
    monkeypatch.setattr(scr, "next_hop", lambda: reads.append(1) or real())
    scr.on_datagram(invite(call_id="h9@127.0.0.1"), UAC)
    (fwd, to), = sent(scr)
    assert fwd.method == "INVITE" and to == UAS and len(reads) == 1, reads


def test_an_invite_reads_its_from_tag_once(scr, monkeypatch):
    """An INVITE judged reads its From tag (~1,800 instructions a read) once, for its branch (proxying._request), and
    passes it on for its verdict key and dialog keys (screening._screen_once): it was read for each of the four,
    then twice. The keys are as before."""
    from engine.sip_screen.message import SipMessage
    real, reads = SipMessage.tag_in, []
    monkeypatch.setattr(SipMessage, "tag_in", lambda m, v: reads.append(v) or real(m, v))
    scr.on_datagram(invite(call_id="h10@127.0.0.1"), UAC)
    (fwd, to), = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    assert len([v for v in reads if v and "tag=abc" in v]) == 1, reads
    ent = scr.answered.get(dialogs.dialog_digest(scr.dialog_key, "h10@127.0.0.1"))
    assert ent[2] == dialogs.dialog_digest(scr.dialog_key, "abc", "0901234567", "0912345678")
    assert ent[4] == dialogs.dialog_digest(scr.dialog_key, "abc", "0901234567")
    assert fwd.get("from").endswith(";tag=abc")


def test_the_call_judged_is_the_invite_read_once(scr, monkeypatch):
    """The Call an INVITE is judged as (made by position: verdict.Call's first five fields, the numbers fifth) names
    its caller, callee, time, ingress and both numbers as read, and nothing of a call record."""
    judged, real = [], scr.pipeline.judge
    monkeypatch.setattr(scr.pipeline, "judge", lambda call: judged.append(call) or real(call))
    scr.on_datagram(invite(caller="0901234567", callee="0912345678", call_id="h11@127.0.0.1"), UAC)
    (fwd, to), = sent(scr)
    (call,) = judged
    assert (call.caller, call.callee, call.ingress, call.nums) == (
        "0901234567", "0912345678", f"{UAC[0]}:{UAC[1]}", (84901234567, 84912345678))
    assert call.time.tzinfo is not None and (call.id, call.duration, call.kind) == (None, None, "call")


@pytest.mark.parametrize("score", [0.0, -0.0, 3.0, 0.1 + 0.2, 2.00005, 2.00015, -4.12345, 15.0, 99999999999.99995,
                                   1e11, 1.5e12, float("inf"), float("nan"), 7, 0])
def test_a_call_line_writes_its_score_as_round_and_repr_do(tmp_path, score):
    """A call's verdict line writes its score as the SMS line does ("%.4f" without trailing zeros below 1e11, not
    round() then repr(): ~2,000 instructions less a line): the same text as before, repr of round(score, 4), whatever
    the score (ties, signed zero, large, not finite, an int)."""
    from datetime import datetime, timezone
    from engine.verdictlog import VerdictLog
    vlog = VerdictLog(str(tmp_path / "v.jsonl"))
    vlog.write_call(datetime(2026, 12, 6, tzinfo=timezone.utc), "c", "0901234567", "0912345678", "127.0.0.1:5080",
                    Verdict(Action.TAG, score, ()), 12.5)
    vlog.close()
    line = (tmp_path / "v.jsonl").read_text()
    want = float.__repr__(round(score, 4)) if isinstance(score, float) else int.__repr__(score)
    assert f'"score": {want}, "hits"' in line, line


@pytest.mark.parametrize("call_id, cseq", [
    ("h11@127.0.0.1", "1 INVITE"), (" h12@h ", "  7   INVITE"), ("h13", ""), ("h14", "   "), (None, None), ("h15", "9")])
def test_an_invite_in_flight_is_keyed_by_its_transaction_as_its_final_names_it(scr, call_id, cseq):
    """The key an INVITE sent is kept under in `ringing` (draining._invite_sent writes tx_key's text itself, without
    its frame) is the one its final ends: digest(tx_key(Call-ID, CSeq)), whatever blanks either has."""
    from engine.sip_screen.message import SipMessage
    from engine.sip_screen.recent import digest
    headers = [[n, v, n.lower()] for n, v in (("Call-ID", call_id), ("CSeq", cseq)) if v is not None]
    scr._invite_sent(SipMessage("INVITE", "sip:0912345678@127.0.0.1", headers=headers), now=5.0)
    assert scr.ringing == {digest(responses.tx_key(call_id, cseq)): 5.0}
