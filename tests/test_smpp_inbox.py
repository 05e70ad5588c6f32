"""The proxy's inbox (engine/smpp_proxy/inbox.py): PDUs from ESMEs are handled in order per
session, in turn across sessions, in slices after which every queued write is flushed; a
session with MAX_QUEUED waiting is paused until it is down to half; a closing session has
its queue handled first. No clock is faked: slices are only bounded above, never asserted."""
import asyncio
from collections import deque

import engine.smpp_proxy.inbox as I
from tests.test_smpp_proxy import pipe  # noqa: F401  (fixture: lists with a blacklisted number)


class _T:
    def __init__(self):
        self.writes, self.paused = [], False

    def write(self, b):
        self.writes.append(b)

    def is_closing(self):
        return False

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


class _Sess:
    def __init__(self, name, batch):
        from engine.smpp_proxy.stream import CoalescedStream
        self.name, self.inq, self.reading_paused = name, deque(), False
        self.stream = CoalescedStream()
        self.stream.transport, self.stream.batch = _T(), batch

    def pause(self):
        self.reading_paused = True

    def resume(self):
        self.reading_paused = False


def _run(body):
    async def main():
        batch = I.WriteBatch()
        handled = []

        def handle(sess, pdu):
            handled.append((sess.name, pdu))
            sess.stream._queue(b"%s%d;" % (sess.name.encode(), pdu))
        inbox = I.Inbox(handle, batch)
        await body(inbox, batch, handled)
    asyncio.run(main())


def test_order_per_session_and_turns_across_sessions():
    async def body(inbox, batch, handled):
        a, b = _Sess("a", batch), _Sess("b", batch)
        for i in range(5):
            inbox.put(a, i)
        for i in range(2):
            inbox.put(b, i)
        for _ in range(20):
            await asyncio.sleep(0)
        assert [p for s, p in handled if s == "a"] == list(range(5))
        assert [p for s, p in handled if s == "b"] == [0, 1]
        # b is not held back behind all of a's: they alternate while both have work
        assert handled[:4] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
        assert b"".join(a.stream.transport.writes) == b"a0;a1;a2;a3;a4;"     # nothing lost or reordered
        assert inbox.waiting == 0
    _run(body)


def test_writes_are_coalesced_while_many_wait_and_leave_per_pdu_when_few_do():
    async def body(inbox, batch, handled):
        a = _Sess("a", batch)
        n = I.FLUSH_EACH_BELOW + 8
        for i in range(n):
            inbox.put(a, i)
        assert a.stream.transport.writes == []          # nothing handled inside the read
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(handled) == n
        writes = a.stream.transport.writes
        assert len(writes) < n                          # coalesced while the backlog was long
        # once fewer than FLUSH_EACH_BELOW wait behind it, each PDU's answer is its own write
        tail = range(n - I.FLUSH_EACH_BELOW + 1, n)
        assert writes[-len(tail):] == [b"a%d;" % i for i in tail]
        assert b"".join(writes) == b"".join(b"a%d;" % i for i in range(n))
    _run(body)


def test_a_session_that_floods_is_paused_and_resumed():
    async def body(inbox, batch, handled):
        a = _Sess("a", batch)
        for i in range(I.MAX_QUEUED):
            inbox.put(a, i)
        assert a.reading_paused
        for _ in range(200):
            await asyncio.sleep(0)
            if not a.inq:
                break
        assert not a.reading_paused and len(handled) == I.MAX_QUEUED
    _run(body)


def test_drain_session_handles_its_queue_now():
    async def body(inbox, batch, handled):
        a, b = _Sess("a", batch), _Sess("b", batch)
        inbox.put(a, 0)
        inbox.put(b, 0)
        inbox.put(a, 1)
        inbox.drain_session(a)
        assert handled == [("a", 0), ("a", 1)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert handled[-1] == ("b", 0) and inbox.waiting == 0
    _run(body)


def test_pdus_read_before_a_fatal_one_are_handled_and_answered_before_the_close(pipe):
    """Through the proxy: submits queued in the inbox and a PDU that loses framing, all in one
    segment. Each submit is judged and logged; the dropped ones (a blacklisted sender) are
    answered, then comes the generic_nack, then the close."""
    import io
    import json
    import socket
    import struct

    from engine.smpp_proxy.codec import constants as C
    from engine.smpp_proxy.codec import encode
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.harness import ProxyHarness
    from engine.verdictlog import VerdictLog
    from tests.test_smpp_proxy import raw_session, read_raw

    buf = io.StringIO()
    with ProxyHarness(pipe, accounts=("esme1:secret",), verdict_log=VerdictLog(buf)) as h:
        s, r = raw_session(h)
        assert r.command_status == 0
        n = 12
        seg = b"".join(encode(P.SubmitSm(sequence_number=10 + i, source_addr="84987000666",       # blacklisted
                                         destination_addr="84912345678", short_message=b"hi %d" % i))
                       for i in range(n))
        seg += struct.pack(">IIII", 8, C.SUBMIT_SM, 0, 99)           # command_length 8 < 16: framing lost
        s.sendall(seg)
        got = []
        while True:
            try:
                got.append(read_raw(s))
            except (ConnectionError, socket.timeout):
                break
        resps = [p for p in got if p.command_id == C.SUBMIT_SM_RESP]
        assert sorted(p.sequence_number for p in resps) == list(range(10, 10 + n))      # each once
        assert all(p.command_status != 0 for p in resps)
        assert got[-1].command_id == C.GENERIC_NACK and got[-1].command_status == C.ESME_RINVCMDLEN
        h.run(h.proxy.vlog.flush)
        recs = [json.loads(l) for l in buf.getvalue().splitlines()]
        assert [r["action"] for r in recs if r["sender"] == "84987000666"] == ["drop"] * n


def _spool_at_flush_points(tmp_path, loop):
    """A write batch, a state record buffer and its crash spool packed at the batch's flush points, as serve wires
    them: (batch, buf, spool)."""
    from engine.state.journalspool import JournalSpool, Records
    batch, buf = I.WriteBatch(), Records()
    spool = JournalSpool(tmp_path, buf)
    spool.later = batch.later
    spool.start(loop)
    return batch, buf, spool


def test_the_state_spool_is_packed_at_the_flush_point_before_the_forward_leaves(tmp_path):
    """The state journal's crash spool (engine/state/journalspool.py) packs what a message committed at the
    inbox's flush point, before that message's writes leave, instead of in a call_soon of its own. The call_soon
    added a loop iteration (a zero-timeout epoll_wait and a callback) per committing message at a moderate rate,
    and under uvloop, which runs I/O callbacks before the ready queue, the SMSC's answer read in that iteration
    could be relayed before the count was spooled. Outside a slice (a timer, the SIP screen) it stays a call_soon."""
    async def main():
        loop = asyncio.get_running_loop()
        batch, buf, spool = _spool_at_flush_points(tmp_path, loop)
        seen = []                                   # records spooled when each write left

        def handle(sess, pdu):
            buf.append(["c", "NS", pdu])            # the message's counter update, as the journalled store adds it
            sess.stream._queue(b"%d;" % pdu)
        inbox = I.Inbox(handle, batch)
        a = _Sess("a", batch)
        a.stream.transport.write = lambda b: seen.append((b, spool.spooled))
        soon = []
        real_soon = loop.call_soon
        loop.call_soon = lambda fn, *x, **k: (soon.append(fn), real_soon(fn, *x, **k))[1]
        try:
            for i in range(3):
                inbox.put(a, i)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
        finally:
            del loop.call_soon
        assert seen == [(b"0;", 1), (b"1;", 2), (b"2;", 3)]        # spooled before the write
        assert spool.pack not in soon and soon.count(inbox.run) == 3    # the inbox's turns, no pack of its own
        buf.append(["c", "NS", 9])                  # outside a slice: right after this iteration, as before
        assert spool.spooled == 3
        await asyncio.sleep(0)
        assert spool.spooled == 4
        spool.close()
    asyncio.run(main())


def test_outside_a_slice_the_spool_is_packed_before_writes_already_due_leave(tmp_path):
    """Outside a slice (a timer judging a concatenated message at its timeout) the pack was a call_soon of its own,
    queued behind the flush another write had already asked for in that iteration (an answer to another ESME, an
    enquire_link_resp): that flush sent the committing message's submit_sm to the SMSC before its count was
    spooled, and a crash between the two lost the count of a message that went out. Packed at that flush now."""
    async def main():
        loop = asyncio.get_running_loop()
        batch, buf, spool = _spool_at_flush_points(tmp_path, loop)
        seen = []
        a, b = _Sess("a", batch), _Sess("b", batch)
        a.stream.transport.write = lambda x: seen.append((x, spool.spooled))
        b.stream.transport.write = lambda x: seen.append((x, spool.spooled))

        def timer():
            b.stream._queue(b"resp;")               # a write already due: its flush is queued (call_soon)
            buf.append(["c", "NS", 1])              # the judged message's count
            a.stream._queue(b"submit;")             # and its submit_sm, flushed with the other
        loop.call_soon(timer)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert (b"submit;", 1) in seen, seen        # spooled before it left
        spool.close()
    asyncio.run(main())
