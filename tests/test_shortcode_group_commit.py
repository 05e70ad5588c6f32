"""5656 commands are written off the event loop, several in one fsync (engine/groupcommit.py): a
stalled disk holds the commands (unanswered, not in force) and nothing else; each is put in force and
answered, in order, only once it is on disk; a stop answers what it took."""
import asyncio
import threading
import time

from engine.groupcommit import GroupCommit
from engine.smpp_proxy.codec import constants as C
from tests.test_smpp_mo_concat import answers, confirmations, deliver, mo, proxy, verdicts  # noqa: F401
from tests.test_smpp_proxy import HAM, client, pipe, send, wait  # noqa: F401 (pipe: fixture)


def _run(coro):
    return asyncio.run(coro)


class Gate:
    """A write function that records its batches and holds the first `hold` of them until opened."""

    def __init__(self, hold=1, result=None):
        self.batches, self.open, self.hold, self.result = [], threading.Event(), hold, result
        self.entered = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) <= self.hold:
            self.entered.set()
            assert self.open.wait(10)
        return self.result(items) if self.result else [None] * len(items)


def test_what_waits_while_one_write_runs_goes_in_the_next_write_and_is_answered_in_order():
    async def go():
        gate = Gate()
        w = GroupCommit(gate, asyncio.get_running_loop())
        done = []
        assert w.submit(0, lambda e: done.append((0, e)))
        assert await asyncio.to_thread(gate.entered.wait, 5)         # the first write is under way
        for i in range(1, 6):
            assert w.submit(i, lambda e, i=i: done.append((i, e)))
        await asyncio.sleep(0.05)
        assert done == [] and w.waiting == 6                           # nothing answered before it is written
        gate.open.set()
        assert await w.idle(5)
        w.close()
        return gate.batches, done, w
    batches, done, w = _run(go())
    assert batches == [[0], [1, 2, 3, 4, 5]]                           # two fsyncs for six commands
    assert done == [(i, None) for i in range(6)] and w.waiting == 0 and (w.batches, w.items) == (2, 6)


def test_each_item_gets_its_own_error_and_a_failing_writer_fails_its_whole_batch():
    err = OSError(28, "No space left on device")

    async def go():
        loop = asyncio.get_running_loop()
        w = GroupCommit(lambda items: [err if x == "bad" else None for x in items], loop)
        got = []
        for x in ("a", "bad", "b"):
            w.submit(x, lambda e, x=x: got.append((x, e)))
        assert await w.idle(5)
        w.close()

        def broken(items):
            raise ValueError("a bug")
        w2 = GroupCommit(broken, loop)
        got2 = []
        for x in ("c", "d"):
            w2.submit(x, lambda e, x=x: got2.append((x, e)))
        assert await w2.idle(5)
        w2.close()
        return got, got2
    got, got2 = _run(go())
    assert got == [("a", None), ("bad", err), ("b", None)]
    assert [x for x, _ in got2] == ["c", "d"] and all(isinstance(e, OSError) and "a bug" in str(e) for _, e in got2)


def test_a_full_or_closed_writer_refuses_so_the_caller_writes_itself():
    async def go():
        gate = Gate()
        w = GroupCommit(gate, asyncio.get_running_loop(), max_waiting=2)
        assert w.submit(1, lambda e: None) and w.submit(2, lambda e: None)
        assert not w.submit(3, lambda e: None) and w.waiting == 2       # bounded
        assert not await w.idle(0.1)                                    # held by the disk
        gate.open.set()
        assert await w.idle(5)
        w.close()
        assert not w.submit(4, lambda e: None)
    _run(go())


def _hold_journal(pipe):
    gate = Gate()
    real = pipe.store.journal

    def journal(changes):
        gate(changes)
        real(changes)
    pipe.store.journal = journal
    return gate


def _dk(h, src, text=b"DK DNC"):
    return deliver(h, mo(text, src=src, dc=0, esm_class=0))


def test_a_stalled_disk_holds_5656_commands_and_nothing_else(proxy, pipe):
    h, buf = proxy()
    gate = _hold_journal(pipe)
    subs = ["84911000011", "84911000012", "84911000013"]
    s0 = _dk(h, subs[0])
    assert gate.entered.wait(5)                                         # its write is under way, held
    seqs = [s0] + [_dk(h, s) for s in subs[1:]]
    # the other traffic moves meanwhile: an ESME's submit_sm is judged and answered
    c = client(h)
    _, resps = send(c, HAM)
    assert resps[0].status == 0
    c.unbind()
    time.sleep(0.1)
    assert answers(h) == {} and confirmations(h, subs[0]) == []        # not answered, not confirmed,
    assert not any(int(s) in pipe.lists.dnc_s for s in subs)            # not in force before it is on disk
    assert verdicts(buf, "5656") == []
    gate.open.set()
    assert wait(lambda: answers(h) == {s: [0] for s in seqs})
    assert all(int(s) in pipe.lists.dnc_s and int(s) in pipe.lists.dnc_v for s in subs)
    assert [len(b) for b in gate.batches] == [1, 2]                     # the two that waited: one fsync
    assert wait(lambda: all(confirmations(h, s) for s in subs))
    assert len(verdicts(buf, "5656")) == 3
    lines = pipe.store.delta_path.read_text().splitlines()
    assert sum('"op": "add"' in l for l in lines) == 3


def test_a_registration_and_its_cancellation_while_the_disk_stalls_end_cancelled(proxy, pipe):
    h, buf = proxy()
    gate = _hold_journal(pipe)
    sub = "84911000021"
    a = _dk(h, sub)
    assert gate.entered.wait(5)
    b = _dk(h, sub, b"HUY DNC")
    gate.open.set()
    assert wait(lambda: answers(h) == {a: [0], b: [0]})
    assert int(sub) not in pipe.lists.dnc_s and int(sub) not in pipe.lists.dnc_v
    ops = [l for l in pipe.store.delta_path.read_text().splitlines() if '"op"' in l]
    assert ['"add"' in ops[0], '"remove"' in ops[1]] == [True, True]
    # the HUY was judged before the DK was in force: what it removed is read when it is put in force, after the DK
    assert [r["hits"][0]["symbol"] for r in verdicts(buf, "5656")] == ["DNC_REGISTERED", "DNC_CANCELLED"]


def test_a_command_the_disk_refuses_is_answered_to_be_sent_again_and_not_in_force(proxy, pipe):
    h, buf = proxy()

    def full(changes):
        raise OSError(28, "No space left on device")
    pipe.store.journal = full
    s = _dk(h, "84911000031")
    assert wait(lambda: answers(h) == {s: [C.ESME_RX_T_APPN]})
    assert 84911000031 not in pipe.lists.dnc_s and confirmations(h, "84911000031") == []
    [line] = verdicts(buf, "5656")
    assert line["action"] == "refuse" and "not recorded" in line["reason"]


def test_a_stop_answers_the_commands_it_took_before_the_links_close(proxy, pipe):
    h, _ = proxy()
    gate = _hold_journal(pipe)
    s = _dk(h, "84911000041")
    assert gate.entered.wait(5)
    stopper = threading.Thread(target=lambda: h.call(h.proxy.stop()))
    stopper.start()
    time.sleep(0.3)
    assert answers(h) == {}
    gate.open.set()
    stopper.join(15)
    assert not stopper.is_alive()
    assert answers(h) == {s: [0]} and 84911000041 in pipe.lists.dnc_s


def test_with_the_writer_full_a_command_is_asked_for_again_not_written_ahead_of_earlier_ones(proxy, pipe):
    h, buf = proxy()
    gate = _hold_journal(pipe)
    h.proxy.commands.max_waiting = 2
    sub = "84911000051"
    a = _dk(h, sub)
    assert gate.entered.wait(5)
    b = _dk(h, "84911000052")
    c = _dk(h, sub, b"HUY DNC")                 # a third while two wait: refused, not written before `a`
    assert wait(lambda: answers(h) == {c: [C.ESME_RX_T_APPN]})
    gate.open.set()
    assert wait(lambda: answers(h) == {a: [0], b: [0], c: [C.ESME_RX_T_APPN]})
    assert int(sub) in pipe.lists.dnc_s                                 # HUY was not recorded: sent again later
    ops = [l for l in pipe.store.delta_path.read_text().splitlines() if '"op"' in l]
    assert len(ops) == 2 and not any('"remove"' in l for l in ops)
    assert h.proxy.stats["shortcode_writer_full"] == 1


def _stall_journal(pipe, hold=60):
    """The DNC journal's first write blocks (a stalled disk) until the gate opens (at most `hold` s)."""
    gate = Gate()
    real = pipe.store.journal

    def journal(changes):
        gate.batches.append(list(changes))
        if len(gate.batches) == 1:
            gate.entered.set()
            gate.open.wait(hold)
        real(changes)
    pipe.store.journal = journal
    return gate


def test_drain_stays_within_its_timeout_when_the_disk_stalls(proxy, pipe):
    """drain(timeout) promises 'the whole drain takes at most timeout' (serve: --drain-timeout bounds the
    whole stop); commands_written waits COMMANDS_WAIT=10 s on top of it."""
    h, _ = proxy()
    gate = _stall_journal(pipe)
    _dk(h, "84911000061")
    assert gate.entered.wait(5)
    t0 = time.monotonic()
    try:
        h.call(h.proxy.drain(timeout=1.0))
        took = time.monotonic() - t0
    finally:
        gate.open.set()
    assert took < 2.0, f"drain(timeout=1) took {took:.1f} s"


def test_stop_does_not_block_the_event_loop_while_the_disk_stalls(proxy, pipe):
    """stop() ends with GroupCommit.close() -> Thread.join(5) ON the event loop: with the disk stalled
    nothing else on the loop (the SIP screen, which serve stops after the proxy) runs for 5 s."""
    h, _ = proxy()
    gate = _stall_journal(pipe)
    _dk(h, "84911000071")
    assert gate.entered.wait(5)
    gaps = []

    async def heartbeat():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    hb = h.run(lambda: asyncio.ensure_future(heartbeat()))
    try:
        h.call(h.proxy.stop())
    finally:
        gate.open.set()
        h.run(hb.cancel)
    assert max(gaps) < 1.0, f"the loop was blocked for {max(gaps):.1f} s during stop()"


def test_a_command_applied_after_catch_up_read_past_it_does_not_undo_a_later_journal_line(proxy, pipe):
    """A HUY DNC is on disk (thread); before its callback runs on the loop, an operator's `ctl lists add`
    for the same number (control.py: append_delta + add_dnc, on the loop) and serve's watch tick
    (catch_up_journal) run. The HUY callback then removes the number: memory says cancelled, the journal
    (and every later start) says registered, and no later catch_up corrects it (its mark is past both)."""
    from engine.lists import ListStore
    from engine.serve import catch_up_journal
    h, _ = proxy()
    sub = "84911000081"
    n = int(sub)
    a = _dk(h, sub)
    assert wait(lambda: answers(h) == {a: [0]}) and n in pipe.lists.dnc_s
    real = pipe.store.journal
    loop = h.loop

    def ctl_add_and_watch_tick():
        pipe.store.append_delta("add", n, "SV")          # control.py lists(): journal first,
        pipe.lists.add_dnc(n, "SV")                       # then in force
        catch_up_journal(pipe)                           # serve's watch: the journal changed

    def journal(changes):
        at = real(changes)
        loop.call_soon_threadsafe(ctl_add_and_watch_tick)
        return at   # ready on the loop before the HUY's callback
    pipe.store.journal = journal
    b = _dk(h, sub, b"HUY DNC")
    assert wait(lambda: answers(h).get(b) == [0])
    time.sleep(0.2)
    h.run(lambda: catch_up_journal(pipe))                # later watch ticks
    on_disk = ListStore(pipe.store.dir).load()
    ops = [l for l in pipe.store.delta_path.read_text().splitlines() if '"op"' in l]
    assert (n in pipe.lists.dnc_s) == (n in on_disk.dnc_s), ("memory", n in pipe.lists.dnc_s, "disk", ops)


def test_a_command_applied_after_a_compaction_and_a_reload_read_past_it_does_not_undo_a_later_line(proxy, pipe):
    """The same with the journal rewritten between the HUY DNC's write and its callback: serve's compaction folds
    the journal into the dnc snapshot under a new generation, an operator's `ctl lists add` follows, and the
    watcher's lists reload reads both. The callback compared journal positions of the same generation only, and
    removed the number again over the operator's change (memory: cancelled; journal and every later start:
    registered)."""
    from engine.lists import ListStore
    from engine.serve import reload_lists
    h, _ = proxy()
    sub = "84911000091"
    n = int(sub)
    a = _dk(h, sub)
    assert wait(lambda: answers(h) == {a: [0]}) and n in pipe.lists.dnc_s
    real, loop = pipe.store.journal, h.loop

    async def ctl_add_and_reload():
        pipe.store.append_delta("add", n, "SV")          # control.py lists(): journal first,
        pipe.lists.add_dnc(n, "SV")                       # then in force
        assert await reload_lists(pipe) is None          # the watcher: the compaction installed a snapshot

    def journal(changes):
        at = real(changes)
        assert ListStore(pipe.store.dir).compact_journal(min_bytes=0)    # serve's compaction, a worker thread
        asyncio.run_coroutine_threadsafe(ctl_add_and_reload(), loop).result(10)
        return at   # all of it on the loop before the HUY's callback
    pipe.store.journal = journal
    b = _dk(h, sub, b"HUY DNC")
    assert wait(lambda: answers(h).get(b) == [0])
    pipe.store.journal = real
    on_disk = ListStore(pipe.store.dir).load()
    assert n in on_disk.dnc_s and n in on_disk.dnc_v
    assert n in pipe.lists.dnc_s and n in pipe.lists.dnc_v, "memory undid the operator's later change"


def test_a_command_written_after_a_compaction_the_lists_have_not_read_yet_is_put_in_force(proxy, pipe):
    """The other side: the journal rewritten before the write and no reload since (the watcher looks a second
    later); the lists in force have not read the line, and the command is put in force."""
    from engine.lists import ListStore
    h, _ = proxy()
    sub = "84911000092"
    n = int(sub)
    a = _dk(h, "84911000093")
    assert wait(lambda: answers(h) == {a: [0]})
    assert ListStore(pipe.store.dir).compact_journal(min_bytes=0)
    b = _dk(h, sub)
    assert wait(lambda: answers(h).get(b) == [0])
    assert n in pipe.lists.dnc_s and n in ListStore(pipe.store.dir).load().dnc_s
