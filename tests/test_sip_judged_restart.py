"""The SIP screen's memory of the INVITEs it judged across a clean stop and start (engine/sip_screen/judgedstore.py,
in the answered-call memory's file: dialogstore.py).

Before, only the answered calls outlived a restart: an INVITE judged just before the stop and retransmitted after the
start (RFC 3261 Timer B: for 32 s; a rolling upgrade restarts serve in a few seconds) was judged again -- an ad call
let through was refused 608 by its own count, and every such call had a second verdict line. Here, with the screen's
fake socket and the same pipeline (its counts kept, as the state store keeps them): the retransmission gets the
call's decision again, unjudged and uncounted; entries expire when they would have (the time down counts); a file of
the previous version still gives its answered calls; a crafted file is refused whole and the screen serves.
tests/test_sipp_dialog_restart.py does the same through `serve`."""
import logging
import time

import msgpack
import pytest

from engine.sip_screen.dialogstore import dump, load, restore_dialogs, save_dialogs

from .sip_helpers import AD_CALLER, UAC, UAS, ad_pipe, invite, sent
from .test_sip_dialog_restart import T0, answered_call, screen

CALLEE = "0912345678"


@pytest.fixture
def pipe(tmp_path):
    return ad_pipe(tmp_path / "data")


def _ad_invite(call_id="ad-1"):
    return invite(caller=AD_CALLER, callee=CALLEE, call_id=call_id)


def _restart(pipe, scr, tmp_path, down=5.0):
    path = tmp_path / "data" / "sip" / "dialogs.msgpack"
    save_dialogs(scr, path)
    new, vlog = screen(pipe, [60.0 + down], [7.0])
    restore_dialogs(new, path)
    return new, vlog


def test_an_ad_invite_forwarded_before_a_restart_is_forwarded_again_unjudged_and_uncounted(pipe, tmp_path):
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(_ad_invite(), UAC)
    ((fwd, to),) = sent(scr)
    assert fwd.method == "INVITE" and to == UAS and len(vlog.calls) == 1
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(_ad_invite(), UAC)                  # its retransmission, 5 s after the restart
    ((again, to),) = sent(new)
    # forwarded as before (the same branch: the next hop absorbs it as the retransmission it is), no verdict line,
    # not judged (it was refused 608 AD_CALL_FREQUENCY_CAP by its own count)
    assert again.method == "INVITE" and to == UAS and again.values("via")[0] == fwd.values("via")[0]
    assert vlog2.calls == [] and new.stats["screened"] == 0 and new.stats["replayed"] == 1
    # the count stayed the call's one: a second ad call to that callee the same day is still refused
    new.on_datagram(_ad_invite("ad-2"), UAC)
    ((r, to),) = sent(new)
    assert r.status == 608 and to == UAC and len(vlog2.calls) == 1


def test_a_refused_invite_retransmitted_after_a_restart_gets_the_same_answer_without_a_verdict_line(pipe, tmp_path):
    scr, vlog = screen(pipe, [60.0], [1000.0])
    answered_call(scr)                                  # the callee's ad call of the day
    scr.on_datagram(_ad_invite("ad-2"), UAC)            # a second one: refused by the cap
    ((r, _),) = sent(scr)
    assert r.status == 608 and len(vlog.calls) == 2
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(_ad_invite("ad-2"), UAC)
    ((r2, to),) = sent(new)
    assert r2.status == 608 and to == UAC and r2.get("reason") == r.get("reason") and r2.get("to") == r.get("to")
    assert vlog2.calls == [] and new.stats["screened"] == 0 and new.stats["rejected"] == 0


@pytest.mark.parametrize("age, down, replayed", [(20.0, 5.0, True), (20.0, 15.0, False), (33.0, 0.0, False)])
def test_a_carried_invite_expires_when_it_would_have_the_time_down_included(pipe, age, down, replayed):
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(invite(call_id="plain-1"), UAC)
    sent(scr)
    judged_at = next(iter(scr.invites.d.values()))[0]
    data = dump(scr, 1000.0, T0.timestamp() + 60, judged_at + age)
    new, vlog2 = screen(pipe, [60.0 + down], [7.0])
    load(new, data, 7.0, T0.timestamp() + 60 + down)
    new.on_datagram(invite(call_id="plain-1"), UAC)
    ((fwd, _),) = sent(new)
    assert fwd.method == "INVITE"
    # within Timer B's 32 s of its judging: a copy; after, the same branch is another call (judged: screening.py)
    assert (len(vlog2.calls), new.stats["replayed"]) == ((0, 1) if replayed else (1, 0))


def test_a_copy_with_another_cseq_or_callee_is_judged(pipe, tmp_path):
    scr, _ = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(invite(call_id="plain-1"), UAC)
    sent(scr)
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(invite(call_id="plain-1", cseq="2 INVITE"), UAC)      # a new request on the branch (§8.1.1.7)
    new.on_datagram(invite(call_id="plain-1", callee="0912000111"), UAC)
    assert len(vlog2.calls) == 2 and new.stats["replayed"] == 0


def test_a_file_of_version_1_still_gives_its_answered_calls(pipe, tmp_path):
    scr, _ = screen(pipe, [60.0], [1000.0])
    answered_call(scr)
    d = msgpack.unpackb(dump(scr, 1000.0, T0.timestamp() + 60), raw=False)
    d["version"] = 1
    for c in [c for c in d if c.startswith("tx_")]:
        del d[c]
    new, _ = screen(pipe, [65.0], [7.0])
    assert load(new, msgpack.packb(d), 7.0, T0.timestamp() + 65) == 1
    assert len(new.answered) == 1 and new.carried is None


def _file(pipe):
    scr, _ = screen(pipe, [60.0], [1000.0])
    answered_call(scr)
    scr.on_datagram(_ad_invite("ad-2"), UAC)            # a refused one too
    sent(scr)
    return msgpack.unpackb(dump(scr, 1000.0, T0.timestamp() + 60), raw=False)


BAD = {"drop code": lambda d: [x.__setitem__(1, 200) for x in d["tx_decisions"] if x[0] == 2],
       "no column": lambda d: d.pop("tx_ages"),
       "short keys": lambda d: d.__setitem__("tx_keys", d["tx_keys"][:-1]),
       "age NaN": lambda d: d.__setitem__("tx_ages", b"\x00" * 6 + b"\xf8\x7f" + d["tx_ages"][8:]),
       "age over Timer B": lambda d: d.__setitem__("tx_ages", b"\x00" * 7 + b"\x41" + d["tx_ages"][8:]),
       "action": lambda d: d["tx_decisions"][0].__setitem__(0, 9),
       "code": lambda d: d["tx_decisions"][0].__setitem__(1, 1000),
       "score": lambda d: d["tx_decisions"][0].__setitem__(4, "high"),
       "symbols": lambda d: d["tx_decisions"][0].__setitem__(3, [1, 2]),
       "symbol with CR LF": lambda d: d["tx_decisions"][0].__setitem__(2, ["X\r\nContact: <sip:evil@192.0.2.1>"]),
       "decision index": lambda d: d["tx_decision_of"].__setitem__(0, 99),
       "dest index": lambda d: d["tx_dest_of"].__setitem__(0, 99),
       "dest port": lambda d: d["tx_dests"].append(["127.0.0.1", 0, "UDP"]) or d["tx_dest_of"].__setitem__(0, 1),
       "dest transport": lambda d: d["tx_dests"].append(["127.0.0.1", 5, "SCTP"]) or d["tx_dest_of"].__setitem__(0, 1),
       "decisions not a list": lambda d: d.__setitem__("tx_decisions", {"a": 1})}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_crafted_judged_invite_column_refuses_the_file_whole_and_the_screen_serves(pipe, tmp_path, caplog, case):
    d = _file(pipe)
    assert len(d["tx_decision_of"]) == 2 and len(d["tx_dests"]) == 1
    BAD[case](d)
    path = tmp_path / "d.msgpack"
    path.write_bytes(msgpack.packb(d))
    new, vlog = screen(pipe, [65.0], [7.0])
    with caplog.at_level(logging.ERROR, logger="telfilter.sip"):
        assert restore_dialogs(new, path) == 0
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage() and str(path) in r.getMessage()]
    assert len(new.answered) == 0 and new.carried is None
    new.on_datagram(invite(caller="0901234567", call_id="other-1"), UAC)
    ((fwd, _),) = sent(new)
    assert fwd.method == "INVITE" and len(vlog.calls) == 1


def test_a_planted_destination_outside_the_networks_is_answered_503_not_sent(pipe, tmp_path):
    """Entries that pass the checks are the screen's own kind: a destination it may not send to is refused at the
    send, as any is (forwarding._send)."""
    d = _file(pipe)
    d["tx_dests"][0] = ["192.0.2.1", 5060, "UDP"]
    new, vlog = screen(pipe, [65.0], [7.0])
    load(new, msgpack.packb(d), 7.0, T0.timestamp() + 65, time.monotonic())
    new.on_datagram(_ad_invite("ad-1"), UAC)
    ((r, to),) = sent(new)
    assert r.status == 503 and to == UAC and vlog.calls == []


def test_the_save_is_bounded_and_holds_only_the_last_32_s(pipe):
    scr, _ = screen(pipe, [60.0], [1000.0])
    for i in range(5):
        scr.on_datagram(invite(call_id=f"p-{i}"), UAC)
    sent(scr)
    t = [e[0] for e in scr.invites.d.values()]
    d = msgpack.unpackb(dump(scr, 1000.0, T0.timestamp() + 60, t[2] + 32.0 + 1e-6), raw=False)
    assert len(d["tx_decision_of"]) == sum(1 for x in t if x >= t[2] + 1e-6)


def test_an_ad_call_given_back_before_a_restart_is_judged_and_counted_again_after_it(pipe, tmp_path):
    """Its forward failed (answered 503 by the screen, its counts given back: screening._give_back): its decision is
    not carried, or its retransmission after the start would be forwarded on it, never counted."""
    from engine.sip_screen.settings import permitted_ranges
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.s.next_hop = "127.0.0.2:5070"
    scr.ranges = permitted_ranges(["127.0.0.1/32"])      # the next hop is outside: the call cannot leave
    scr.on_datagram(_ad_invite(), UAC)
    ((r, _),) = sent(scr)
    assert r.status == 503 and scr.stats["uncounted_unsent"] == 1
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(_ad_invite(), UAC)                  # its retransmission: judged, counted, sent
    ((fwd, to),) = sent(new)
    assert fwd.method == "INVITE" and to == UAS and len(vlog2.calls) == 1 and new.stats["replayed"] == 0
    new.on_datagram(_ad_invite("ad-2"), UAC)            # that call is counted: the next one is refused
    ((r, _),) = sent(new)
    assert r.status == 608


@pytest.mark.parametrize("host", ["example.com", "::1", "1.2.3.4.5", "127.0.0.1\x00", "[::1]"])
def test_a_planted_destination_that_is_no_address_never_crashes_the_screen(pipe, host):
    d = _file(pipe)
    d["tx_dests"][0] = [host, 5070, "UDP"]
    new, vlog = screen(pipe, [65.0], [7.0])
    load(new, msgpack.packb(d), 7.0, T0.timestamp() + 65, time.monotonic())
    new.on_datagram(_ad_invite("ad-1"), UAC)            # forwarded where the file says, or answered: never a 500
    new.on_datagram(_ad_invite("ad-1").replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL"), UAC)
    assert new.stats["internal_errors"] == 0 and vlog.calls == []
    assert all(m.status != 500 for m, _ in sent(new))


def test_the_periodic_save_writes_the_judged_invites_in_the_same_file(pipe, tmp_path):
    """One format, one writer: the forked periodic save (dialogsave.py) writes what the stop's save writes."""
    import asyncio

    from engine.sip_screen.dialogsave import DialogSaver
    scr, _ = screen(pipe, [60.0], [1000.0])
    path = tmp_path / "sip" / "dialogs.msgpack"
    saver = DialogSaver(scr, path)
    scr.on_datagram(_ad_invite(), UAC)
    sent(scr)
    assert asyncio.run(saver.save_if_changed())
    d = msgpack.unpackb(path.read_bytes(), raw=False)
    assert d["version"] == 2 and len(d["tx_decision_of"]) == 1 and d["tx_dests"] == [["127.0.0.1", 5070, "UDP"]]
    new, vlog = screen(pipe, [62.0], [7.0])
    assert restore_dialogs(new, path) == 1 and len(new.carried) == 1


def test_the_sweeper_lets_go_of_rejected_invites_past_timer_b(pipe, tmp_path):
    from engine.sip_screen.judgedstore import expire_judged
    scr, _ = screen(pipe, [60.0], [1000.0])
    answered_call(scr)
    for i in range(3):
        scr.on_datagram(_ad_invite(f"ad-{i + 2}"), UAC)     # refused by the cap
    sent(scr)
    t = [e[0] for e in scr.rejected.d.values()]
    assert len(t) == 3
    expire_judged(scr, t[1] + 32.0 + 1e-6)
    assert [e[0] for e in scr.rejected.d.values()] == t[2:]
    new, _ = _restart(pipe, scr, tmp_path)
    assert new.carried is not None
    expire_judged(new, new.carried_until + 1e-6)
    assert new.carried is None


def test_a_second_restart_within_the_32_s_carries_them_again(pipe, tmp_path):
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(_ad_invite(), UAC)
    ((fwd, _),) = sent(scr)
    new, _ = _restart(pipe, scr, tmp_path)
    newer, vlog3 = _restart(pipe, new, tmp_path)         # a rolling upgrade's second step, seconds later
    newer.on_datagram(_ad_invite(), UAC)
    ((again, to),) = sent(newer)
    assert again.method == "INVITE" and to == UAS and again.values("via")[0] == fwd.values("via")[0]
    assert vlog3.calls == [] and newer.stats["replayed"] == 1


def test_a_tagged_call_carried_is_tagged_again(pipe, tmp_path):
    from engine.sip_screen.screening import Decision
    from engine.verdict import Action
    scr, _ = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(invite(call_id="tagged-1"), UAC)
    sent(scr)
    ((k, (t, (branch, dest, d))),) = scr.invites.d.items()
    assert d == 0                                       # let through untagged: kept as 0 (forwarding._went)
    scr.invites.d[k] = (t, (branch, dest, Decision(Action.TAG, 603, (), ("CALL_VOLUME_ANOMALY",), 5.5)))
    new, vlog = _restart(pipe, scr, tmp_path)
    new.on_datagram(invite(call_id="tagged-1"), UAC)
    ((fwd, to),) = sent(new)
    assert to == UAS and fwd.get("x-spam-score") == "5.5; symbols=CALL_VOLUME_ANOMALY" and vlog.calls == []


def test_a_retransmission_after_a_give_back_gets_our_503_again_not_a_second_judging(pipe):
    """An ad call whose forward failed (503 by us, its counts given back), then retransmitted (our 503 lost) once the
    next hop can be reached: that 503 is its transaction's final (forwarding.UNSENT). It was judged again, counted and
    forwarded on the same branch: a second verdict line for one transaction, the first's call_unsent line saying the
    call never left (and its forwarded-INVITE entry had to be mended so a restart carried the new decision)."""
    from engine.sip_screen.settings import permitted_ranges
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.s.next_hop = "127.0.0.2:5070"
    ranges, scr.ranges = scr.ranges, permitted_ranges(["127.0.0.1/32"])    # the next hop is unreachable, then back
    scr.on_datagram(_ad_invite(), UAC)
    ((r, _),) = sent(scr)
    assert r.status == 503 and scr.stats["uncounted_unsent"] == 1
    scr.ranges = ranges
    scr.permit_cache.clear()
    scr.on_datagram(_ad_invite(), UAC)                  # its retransmission: the same 503, not judged, not sent
    ((again, _),) = sent(scr)
    assert again.status == 503 and len(vlog.calls) == 1 and scr.stats["replayed"] == 1


def test_an_invite_sent_again_past_timer_b_and_judged_again_is_carried_from_its_new_judging(pipe, tmp_path):
    """The same INVITE byte for byte over 32 s later is another call (screening.py), judged: its entry kept the
    first one's time, too old to be saved, and its retransmissions after a restart were judged once more."""
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(invite(call_id="plain-1"), UAC)
    sent(scr)
    for mem in (scr.invites, scr.transactions, scr.verdicts):      # as if it was judged 40 s ago
        for k, (t, v) in list(mem.d.items()):
            mem.d[k] = (t - 40.0, v)
    scr.on_datagram(invite(call_id="plain-1"), UAC)
    sent(scr)
    assert len(vlog.calls) == 2
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(invite(call_id="plain-1"), UAC)
    ((fwd, to),) = sent(new)
    assert fwd.method == "INVITE" and to == UAS and vlog2.calls == [] and new.stats["replayed"] == 1


def test_whether_there_is_a_judged_invite_to_save_is_told_without_walking_full_memories(pipe):
    """has_live runs on the event loop (the periodic save, dialogsave.py): it listed and sorted every memory (55-100
    ms with them full, the loop paused); the newest rejected INVITE tells it at once."""
    from engine.sip_screen.judgedstore import has_live

    class Unwalkable(dict):
        def values(self):
            raise AssertionError("walked the forwarded-INVITE memory")

        items = values

    scr, _ = screen(pipe, [60.0], [1000.0])
    answered_call(scr)
    scr.on_datagram(_ad_invite("ad-2"), UAC)            # refused by the cap: in `rejected`
    sent(scr)
    invites, scr.invites.d = scr.invites.d, Unwalkable(scr.invites.d)
    assert has_live(scr, time.monotonic())
    scr.invites.d = invites
    scr.rejected.d.clear()
    assert has_live(scr, time.monotonic())              # the answered call's INVITE, let through
    assert not has_live(scr, time.monotonic() + 33.0)


@pytest.mark.parametrize("symbols", [tuple(f"RULE_{i}" for i in range(65)), ("R" * 129,)])
def test_a_decision_the_reader_would_refuse_is_not_written_and_the_file_keeps_its_calls(pipe, tmp_path, symbols):
    """A verdict of more than 64 symbols (a rule set with many call rules), or a symbol over 128 characters (rule
    symbols have no such bound), judged in the 32 s before the stop: written, the next start refused the whole file
    -- every call in progress lost. Now left out (its copy is judged again after the start)."""
    from engine.sip_screen.screening import Decision
    from engine.verdict import Action
    scr, _ = screen(pipe, [60.0], [1000.0])
    answered_call(scr)
    scr.on_datagram(invite(call_id="tagged-1"), UAC)
    sent(scr)
    k, (t, (branch, dest, _)) = list(scr.invites.d.items())[-1]
    scr.invites.d[k] = (t, (branch, dest, Decision(Action.TAG, 603, (), symbols, 5.5)))
    new, vlog = _restart(pipe, scr, tmp_path)
    assert len(new.answered) == 2 and len(new.carried) == 1     # the answered call's INVITE carried too
    new.on_datagram(invite(call_id="tagged-1"), UAC)
    ((fwd, to),) = sent(new)
    assert fwd.method == "INVITE" and to == UAS and len(vlog.calls) == 1


def test_an_invite_cancelled_while_it_waited_keeps_its_487_across_a_restart(pipe, tmp_path):
    """An INVITE cancelled while it waited for another's verdict on its call, then given a retry's verdict, was
    answered 487 as a copy (screening.py): not kept for the next process, so its retransmission after a restart (the
    487 lost) was judged anew and forwarded -- the callee rung for a caller who had hung up."""
    from .test_sip_transactions_cancel_waiting import cancelled_while_waiting_after_a_retry
    scr, vlog = screen(pipe, [60.0], [1000.0])
    other, held, release = cancelled_while_waiting_after_a_retry(scr)
    while held:
        release()
    assert sorted((m.get("cseq"), m.status or m.method) for m, _ in sent(scr))[-1] == ("2 INVITE", 487)
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(other, UAC)                         # its retransmission after the start: 487 again, not sent
    assert [(m.get("cseq"), m.status) for m, _ in sent(new)] == [("2 INVITE", 487)] and vlog2.calls == []


def test_a_call_whose_forward_failed_before_a_restart_is_judged_again_not_forwarded(pipe, tmp_path):
    """A plain call let through whose send failed (answered our 503, its call_unsent line: it never left) was saved as
    forwarded, and its retransmission after the restart went out unjudged -- the call rang though its log said it never
    left. It is judged again (judgedstore.py), with a line of its own."""
    scr, vlog = screen(pipe, [60.0], [1000.0])

    def dead_hop(data, addr):
        if addr == UAS:
            raise OSError(111, "Connection refused")
        scr.udp.out.append((data, addr))
    scr.udp.sendto = dead_hop
    call = invite(call_id="unsent-1")
    scr.on_datagram(call, UAC)
    ((r, to),) = sent(scr)
    assert (r.status, to, len(vlog.calls)) == (503, UAC, 1)
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(call, UAC)                          # its retransmission, 5 s after the restart
    ((fwd, to),) = sent(new)
    assert (fwd.method, to, len(vlog2.calls)) == ("INVITE", UAS, 1)
