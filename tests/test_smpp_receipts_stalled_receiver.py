"""A receiver bind that stops answering its deliver_sm (routing._receiving, held.late_receipt_answer): it is offered
one receipt at a time (a probe) until it sends anything, other receivers of the account take the rest, and a late
answer to a receipt that timed out ends its held copy. Before, each receipt that timed out was held and offered again to
the same stalled bind (its window free again), so an ESME that caught up after a pause had every receipt 2-5 times."""
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.routing import HELD_RETRY
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_receipts import Esme

TIMEOUT = 0.5           # the response timeout here (smsc_response_timeout: towards ESMEs too)


def _catch_up(e, until, quiet=1.0, timeout=20.0):
    """`e` reads and answers (0) every deliver_sm until `until()` and nothing more came for `quiet` s; returns the
    short_message of each deliver_sm it read, in order (a receipt's id is in it)."""
    got, end, quiet_since = [], time.monotonic() + timeout, None
    while time.monotonic() < end:
        p = e.next(lambda p: p.command_id == C.DELIVER_SM, 0.1)
        if p is not None:
            got.append(bytes(p.short_message))
            e.answer(p)
            quiet_since = None
        elif until():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet:
                return got
    raise AssertionError(f"not caught up in {timeout}s: {len(got)} read")


def _unread(e) -> int:
    """How many deliver_sm wait in `e`'s socket (it read nothing meanwhile)."""
    n = 0
    while e.next(lambda p: p.command_id == C.DELIVER_SM, 0.3) is not None:
        n += 1
    return n


def _rounds(elapsed: float) -> float:
    """Probe rounds in `elapsed` s: one at a time, each HELD_RETRY and a timeout at least."""
    return 1 + elapsed / (HELD_RETRY + TIMEOUT)


def test_a_receiver_that_stalls_then_catches_up_gets_each_receipt_once(pipe):
    n = 60
    with ProxyHarness(pipe, settings=SmppSettings(smsc_response_timeout=TIMEOUT)) as h:
        rx = Esme(h, kind=P.BindReceiver)                      # then reads nothing for a while
        tx = Esme(h, kind=P.BindTransmitter)
        t0 = time.monotonic()
        tx.submit(n)
        assert wait(lambda: h.proxy.stats["receipts_held"] >= n, timeout=15)   # each timed out on rx (or waited)
        time.sleep(3 * (HELD_RETRY + TIMEOUT))      # (the stall under test: three rounds of offers again)
        stalled_for = time.monotonic() - t0
        got = _catch_up(rx, lambda: h.run(lambda: h.proxy.held_total == 0 and not any(
            s.window for s in h.proxy.sessions)))
        assert len(set(got)) == n                               # every receipt
        # once: what timed out waited for its late answer (before: each receipt offered again to the stalled bind
        # every round, 3-5 times each; then, without a probe, again as soon as it answered anything)
        assert len(got) == n, (len(got), stalled_for)
        assert h.proxy.stats["receipts_late_acknowledged"] >= 1


def test_another_receiver_of_the_account_takes_the_receipts_while_one_is_stalled(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(smsc_response_timeout=TIMEOUT)) as h:
        stalled = Esme(h, kind=P.BindReceiver)                  # reads nothing
        live = Esme(h, kind=P.BindReceiver)
        tx = Esme(h, kind=P.BindTransmitter)
        tx.submit(4)
        got = _catch_up(live, lambda: h.proxy.stats["receipts_held"] > 0, 0)     # one of the stalled one's timed out
        t0 = time.monotonic()
        n = 40
        tx.submit(n, first=4)
        got += _catch_up(live, lambda: h.run(lambda: h.proxy.held_total) == 0)
        elapsed = time.monotonic() - t0
        # the stalled bind had what it had before it stalled (of the first 4) and a probe a round at most
        # (before: half the receipts, round robin, and each again every round)
        assert _unread(stalled) <= 4 + _rounds(elapsed), elapsed
        assert len(set(got)) >= n + 4 - 1                       # the live one all (but one in a probe, at most)


def test_a_late_answer_to_a_held_receipt_is_recognised_after_late_seqs_other_timeouts(pipe):
    """The bind's table of timed-out requests keeps the newest LATE_SEQS: a held receipt's entry went at the
    4,097th timeout after it (enquire_links and probes of a long stall), its late answer was then a stray, and the
    receipt, still held, was delivered again once the bind answered a later one: twice. A receipt still held keeps
    its entry (bounded by the held receipts)."""
    from engine.smpp_proxy.esme import LATE_SEQS
    with ProxyHarness(pipe, settings=SmppSettings(smsc_response_timeout=TIMEOUT)) as h:
        rx = Esme(h, kind=P.BindReceiver)
        tx = Esme(h, kind=P.BindTransmitter)
        tx.submit(1)
        first = rx.next(lambda p: p.command_id == C.DELIVER_SM, 10)           # read, not answered: it times out
        assert first is not None
        assert wait(lambda: h.proxy.stats["receipts_held"] >= 1, timeout=10)

        def later_timeouts():                      # LATE_SEQS requests of ours timed out since (seqs never sent)
            s = next(s for s in h.proxy.sessions if s.state.can_receive)
            for seq in range(1 << 30, (1 << 30) + LATE_SEQS):
                s.note_timed_out(seq)
        h.run(later_timeouts)
        rx.answer(first)                                                          # its late answer: it has it
        assert wait(lambda: h.proxy.stats["receipts_late_acknowledged"] == 1, timeout=5), h.proxy.stats
        tx.submit(1, first=1)                      # the bind answers a later one: the held copy would go again
        got = [bytes(first.short_message)] + _catch_up(rx, lambda: h.run(lambda: h.proxy.held_total == 0 and not any(
            s.window for s in h.proxy.sessions)))
        assert sorted(got) == sorted(set(got)) and len(got) == 2, got


def test_a_receipt_whose_record_could_not_be_written_is_not_kept_for_a_late_answer(pipe, tmp_path, monkeypatch):
    """A receipt that timed out and could not be held (its journal record failed: the SMSC keeps it, ESME_RX_T_APPN)
    kept its timed-out seq in esme.late_held for the bind's life: late_held is bounded by the receipts held (or being
    written), and this one is neither. Each such timeout (a stalled receiver on a full disk) added one for good."""
    from engine.smpp_proxy.esme import LATE_SEQS
    from engine.smpp_proxy.heldjournal import HeldJournal
    monkeypatch.setattr(HeldJournal, "write", lambda self, items: [OSError(28, "No space left on device")] * len(items))
    with ProxyHarness(pipe, settings=SmppSettings(smsc_response_timeout=TIMEOUT)) as h:
        h.run(lambda: h.proxy.open_held(tmp_path / "held_receipts.msgpack"))
        rx = Esme(h, kind=P.BindReceiver)
        tx = Esme(h, kind=P.BindTransmitter)
        tx.submit(1)
        assert rx.next(lambda p: p.command_id == C.DELIVER_SM, 10) is not None     # read, not answered: times out
        assert wait(lambda: h.proxy.stats["receipts_not_recorded"] >= 1, timeout=10), h.proxy.stats

        def kept_not_held():
            s = next(s for s in h.proxy.sessions if s.state.can_receive)
            for seq in range(1 << 30, (1 << 30) + LATE_SEQS):      # its seq pushed out of the newest LATE_SEQS
                s.note_timed_out(seq)
            return [seq for seq, e in s.late_held.items() if e.hid not in h.proxy.held_records]
        assert h.run(kept_not_held) == []
