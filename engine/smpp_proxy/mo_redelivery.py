"""5656 messages the SMSC delivers again: known by a digest of what a redelivery keeps, applied once, answered as
the first delivery was.

Theory of operation. An SMSC delivers a deliver_sm again when it had no deliver_sm_resp for it: serve was killed
after the command was on disk and before its answer went out, the answer was lost on the link, or it came after the
SMSC's response timeout. The copy has a new sequence_number and may come on another bind, and SMPP 3.4 gives no
field that says "delivered before". So a copy is known by `digest` (64 bits of BLAKE2b) of what an SMSC sends
again unchanged: source_addr_ton/npi/source_addr, dest_addr_ton/npi/destination_addr, data_coding, the message
octets (short_message with its UDH, message_payload), the SAR TLVs and user_message_reference (SMPP 3.4 §5.3.2.17:
the handset's TP-MR, where the SMSC passes it on: a subscriber's own second message then has another). A
concatenated message's digest covers its parts in part order (their UDH carries its reference number).

The digest of a 5656 command is in the command's own durable line, written by the same write and fsync (so no
crash leaves one without the other): `"mo_digest"` in its reports.jsonl line, `"mo_digest"` and `"at"` (epoch
seconds) in its lists/dnc.delta line; readers ignore fields they do not know, and lines without them (older files,
`check`, another node's change) are no command of this path. `Redeliveries` keeps the digests of the last WINDOW
seconds, at most MAX_KEPT (the oldest forgotten first): a ring of flat arrays and a dict of 64-bit ints, O(1) a
message. The start rebuilds it from the files (`restore`; their lines read by mo_redelivery_files.py):
reports.jsonl read back from its end, dnc.delta, dnc.delta.prev (what the last fold of the journal into the DNC
snapshot took out of it) and dnc.delta.recent (the digests of the last RECENT_KEEP >= WINDOW seconds that every fold
took out of it, kept by the folding writer past the next folds: lists/journal.py `keep_recent`).

A copy of a command in the window is not written or put in force again: answered 0, its subscriber sent the reply
the first delivery got (in the crash case that reply never left: it goes out after the answer; after a lost answer
the subscriber gets the same confirmation twice, within the replies' hourly cap), and its verdict line says
`"redelivery": true` and, as its first delivery's line, `"mo_digest"` (the regulator's report counts it no second
time, and as the message when it reads no first line: report/redelivered.py). A copy that comes while its first delivery
is being written is asked for again (ESME_RX_T_APPN), and makes the first's answer one the SMSC gave up on. A command
on disk whose putting in force raised (a bug: its MO answered ESME_RX_T_APPN, nothing confirmed) is kept `Unapplied`:
its copy puts that command in force, not written again, answered and confirmed as a first delivery (after a restart
the load has put it in force, and the copy is a copy).

What is no copy: a message in one part whose first delivery was answered within ANSWERED_IN_TIME on a link still
open when it comes (no SMSC times out that fast, and an answer written on a live TCP connection arrives; one in parts,
which may come on several links, is a copy within WINDOW): the subscriber's own repeat, a command again (two HUY
DNC V: "removed", then "not on the list"), unless a later command of its number with another TP-MR came between (a
copy superseded, below); and a DNC command that is not its
number's latest 5656 DNC command in the window (a subscriber's DK DNC, HUY DNC, DK DNC leaves them registered; one whose
write failed is none: its number's latest stays the command before it), unless
its digest covers a user_message_reference: a subscriber's new message carries another TP-MR, so that one is a copy
of a command since followed by another (HUY DNC, its answer lost, then DK DNC: the copy came), answered 0, neither
applied over the later command nor confirmed again (`shortcode_redelivered_superseded`), when that later command came
to this process with another TP-MR (proof that the SMSC passes the handset's: one that sends a constant, or none, or
a later command learned from another process's line, leaves the copy and the subscriber's own repeat the same
octets, and it is a command: the HUY DNC copy removes the later registration, a DK DNC copy after a later HUY DNC
registers them again); and a DK DNC whose
number is not on the list for its channels now (an operator's `lists remove dnc` since, another node's HUY DNC): it is
put in force again (adding changes nothing else), never confirmed while not in force. A subscriber's own
repeat within WINDOW after a restart (or after a late answer), through an SMSC that passes no
user_message_reference, is taken for a copy: nothing is changed again (a DNC command repeated changes nothing; a
report repeated is the same reporter's same report) and the same reply is sent. After a restart the reply is the
command's own confirmation: a HUY DNC whose first delivery removed nothing was told DNC_NOT_REGISTERED then,
DNC_CANCELLED now (what the removal found is not on disk).

Times are the messages' (the wall clock, as the lines'). Every FOLLOW_EVERY seconds each process reads the lines
appended to the two files since it last looked (`_follow_redeliveries`: lines without a digest unparsed; its own
are known with their time; after a fold of the journal, dnc.delta.recent's lines since then) and keeps the
digests other processes wrote (a digest known from an earlier time kept anew: the same text sent again there): the
workers of `serve --workers N` (a copy of a command a
worker killed -9 had written comes on another worker's bind), and, with `--state redis://`, the reports other nodes
took (replication appends them to reports.jsonl with their digest; a DNC change replicated carries none: a copy
reaching another node than its first delivery's is a DNC command again there). 5656 messages in parts put together
in Redis (`--state`, engine/state/mo_parts.py) are not looked up here.

Here: the digest and the window (`Redeliveries`); the proxy's use of them (`_redelivered`, `_restore_redeliveries`,
`_follow_redeliveries`, `_apply_failed`) is mo_redelivery_path.py.
"""
from __future__ import annotations

from array import array
from hashlib import blake2b

from .codec import constants as C
from .mo_redelivery_files import _journal_digests, _report_digests

WINDOW = 600.0          # seconds a 5656 command's digest is kept: an SMSC's response timeout and first retries
MAX_KEPT = 100_000      # digests kept at most (~170 a second for WINDOW); the oldest go first
WRITING = "writing"     # a command whose first delivery is being written
# seconds within which a first delivery answered on a link still open when a copy comes was answered for sure (an
# SMSC's response timeout is longer): that copy is the subscriber's own repeat
ANSWERED_IN_TIME = 2.0
_KEPT_TLVS = (C.TAG_MESSAGE_PAYLOAD, C.TAG_SAR_MSG_REF_NUM, C.TAG_SAR_TOTAL_SEGMENTS, C.TAG_SAR_SEGMENT_SEQNUM,
              C.TAG_USER_MESSAGE_REFERENCE)
FOLLOW_EVERY = 1.0      # seconds between two looks at the lines other processes wrote


def digest(pdus) -> int:
    """The digest of one MO message, `pdus` its part(s) in part order (module text)."""
    h = blake2b(digest_size=8)
    for p in pdus:
        h.update(b"%d\x00%d\x00%d\x00%d\x00%d\x00" % (len(pdus), p.source_addr_ton, p.source_addr_npi,
                                                       p.dest_addr_ton, p.dest_addr_npi))
        h.update(f"{p.source_addr}\x00{p.destination_addr}\x00".encode("utf-8", "surrogateescape"))
        sm = getattr(p, "short_message", b"") or b""
        h.update(b"%d\x00%d\x00" % (p.data_coding, len(sm)) + bytes(sm))
        for t in sorted((t for t in p.tlvs if t.tag in _KEPT_TLVS), key=lambda t: t.tag):
            h.update(b"%d\x00%d\x00" % (t.tag, len(t.value)) + bytes(t.value))
    return int.from_bytes(h.digest(), "big")


def hexed(d: int) -> str:
    """A digest as the files keep it."""
    return f"{d:016x}"


class Unapplied:
    """What a copy of a command on disk that was not put in force is answered with: that command put in force."""
    __slots__ = ("cmd",)

    def __init__(self, cmd):
        self.cmd = cmd


class Redeliveries:
    """The digests of the 5656 commands of the last `window` seconds, at most `bound` (module text).

    A ring of `bound` slots, oldest first from `_head`: each slot's digest, time, DNC number and TP-MR in flat arrays,
    what a copy is answered and the link its first delivery was answered on in two lists (None for most), and a dict
    digest -> slot: ~169 B a command kept, 21 MB at MAX_KEPT (measured with half of them DNC commands before the TP-MR
    array; 4.6 MB of it the slots, allocated at start). A slot the dict no longer names (a command not recorded,
    or a digest kept again in a newer slot) is skipped when the head passes it."""

    def __init__(self, window: float = WINDOW, bound: int = MAX_KEPT):
        self.window, self.bound = window, bound
        self._slot: dict = {}                   # digest -> its slot
        self._d = array("Q", bytes(8 * bound))  # a slot's digest
        self._t = array("d", bytes(8 * bound))  # ... its command's time (epoch seconds)
        self._n = array("q", bytes(8 * bound))  # ... its DNC number (0: a report)
        # ... what a copy is answered: WRITING, a Verdict, or None for the command's own verdict
        self._answer: list = [None] * bound
        # ... the link its first delivery was answered on in time (None: unknown, late, or before the last start);
        # while it is written, (that link, the loop time it came)
        self._link: list = [None] * bound
        self._mr = array("i", [-1]) * bound     # ... its TP-MR (user_message_reference) as it came here; -1: none
        self._head = self._used = 0
        self._latest: dict = {}                 # DNC number -> the digest of its latest 5656 DNC command in force
        # DNC number -> the digests of its commands being written: the number's latest once written, no trace if
        # their write fails (what the earlier command established stays the number's latest)
        self._pending: dict = {}

    def __len__(self) -> int:
        return len(self._slot)

    def seen(self, d: int, number: int | None, now: float, mr: int = -1):
        """None: a new command. Else (what its first delivery is answered with: WRITING, a Verdict, or None for the
        command's own verdict; the link the first delivery was answered on in time, or None; whether a later DNC
        command of its number came since: a copy superseded). `mr`: the message's TP-MR (user_message_reference;
        -1: none), which the digest covers: a later command of the number that came here with another TP-MR proves
        the SMSC passes the handset's, so this one is a copy of an earlier command, not the subscriber's own repeat
        (one with the same TP-MR, none, or learned from another process's line cannot tell them apart)."""
        self._expire(now)
        i = self._slot.get(d)
        if i is None or self._t[i] <= now - self.window:
            return None         # (older than the window behind a newer head: the wall clock stepped back)
        last = self._last(number, d) if number is not None else d
        if last != d:
            j = self._slot.get(last)
            if mr < 0 or j is None or self._mr[j] < 0 or self._mr[j] == mr:
                return None     # a later DNC command of that number came since: the same octets are a command again
        a = self._answer[i]
        return a, (None if a is WRITING else self._link[i]), last != d

    def held(self, d: int, number: int | None, now: float):
        """(its Unapplied, whether a later DNC command of `number` came since: superseded) of command `d` kept on disk
        and not in force (`unapplied`), else None. For a copied part of its message (its concatenation key is the
        message's: a subscriber's new message takes a new reference), a copy whatever its TP-MR, unlike `seen`."""
        self._expire(now)
        i = self._slot.get(d)
        if i is None or self._t[i] <= now - self.window or not isinstance(self._answer[i], Unapplied):
            return None
        return self._answer[i], number is not None and self._last(number, d) != d

    def _last(self, number: int, d: int) -> int:
        """The digest of `number`'s latest DNC command in force or being written (`d` when none is kept)."""
        last = self._latest.get(number, d)
        for p in self._pending.get(number, ()):
            j, k = self._slot.get(p), self._slot.get(last)
            if j is not None and (k is None or self._t[j] >= self._t[k]):
                last = p
        return last

    def writing(self, d: int, number: int | None, now: float, link=None, came: float = 0.0, mr: int = -1) -> None:
        self._put(d, now, WRITING, number, (link, came), mr)
        if number is not None:
            self._pending.setdefault(number, []).append(d)

    def written(self, d: int, answer, answered: float) -> None:
        """Its first delivery is in force, answered at loop time `answered`: copies are answered `answer` (None: the
        command's own verdict)."""
        i = self._slot.get(d)
        if i is not None and self._answer[i] is WRITING:
            link, came = self._link[i]
            self._unpend(d, i)
            self._answer[i], self._link[i] = answer, link if answered - came <= ANSWERED_IN_TIME else None
            self._made_latest(d, i)

    def unapplied(self, d: int, cmd) -> None:
        """Its first delivery is on disk but putting it in force raised (answered ESME_RX_T_APPN): a copy puts `cmd`
        in force, not written again. Its number's latest (its line is in force from the next catch-up or start)."""
        i = self._slot.get(d)
        if i is not None and self._answer[i] is WRITING:
            self._unpend(d, i)
            self._answer[i], self._link[i] = Unapplied(cmd), None
            self._made_latest(d, i)

    def copied(self, d: int) -> None:
        """A copy came while its first delivery was being written: the SMSC gave up waiting for that answer, however
        soon it goes out (a later copy is one too)."""
        i = self._slot.get(d)
        if i is not None and self._answer[i] is WRITING:
            self._link[i] = (None, self._link[i][1])

    def failed(self, d: int) -> None:
        """Its first delivery could not be written: nothing of it is in force, a copy is a command again, and it
        supersedes nothing (its number's latest stays the command before it)."""
        i = self._slot.get(d)
        if i is not None and self._answer[i] is WRITING:
            self._forget(d, i)

    def learn(self, d: int, at: float, number: int | None, now: float) -> None:
        """A command another process wrote (a worker of the pool, on this data dir): kept unless out of the window or
        known already with its time (this process's own, read back). One known from an earlier time is the same text
        sent again since: kept anew (with a DNC number, that number's latest: DK DNC here, HUY DNC and DK DNC there,
        then HUY DNC here is no copy)."""
        i = self._slot.get(d)
        if (i is None or at > self._t[i] + 0.01) and at > now - self.window:
            self._put(d, at, None, number)

    def _put(self, d: int, at: float, answer, number: int | None, link=None, mr: int = -1) -> None:
        if d in self._slot:
            self._forget(d, self._slot[d])
        if self._used == self.bound:
            self._pop()
        i = (self._head + self._used) % self.bound
        self._used += 1
        self._slot[d] = i
        self._d[i], self._t[i], self._n[i], self._answer[i], self._link[i] = d, at, number or 0, answer, link
        self._mr[i] = mr
        if answer is not WRITING:
            self._made_latest(d, i)

    def _made_latest(self, d: int, i: int) -> None:
        """Command `d` (slot `i`) in force: its number's latest by the commands' times (a line another process wrote
        is learned up to FOLLOW_EVERY late, after a later command of the number here)."""
        n = self._n[i]
        if n:
            j = self._slot.get(self._latest.get(n))
            if j is None or self._t[i] >= self._t[j]:
                self._latest[n] = d

    def _unpend(self, d: int, i: int) -> None:
        n = self._n[i]
        waiting = self._pending.get(n)
        if waiting is not None and d in waiting:
            waiting.remove(d)
            if not waiting:
                del self._pending[n]

    def _forget(self, d: int, i: int) -> None:
        del self._slot[d]
        n = self._n[i]
        if n and self._latest.get(n) == d:
            del self._latest[n]
        if self._answer[i] is WRITING:
            self._unpend(d, i)
        self._answer[i] = self._link[i] = None

    def _pop(self) -> None:
        """The oldest slot goes (its digest forgotten unless a newer slot holds it)."""
        i = self._head
        d = self._d[i]
        if self._slot.get(d) == i:
            self._forget(d, i)
        self._head, self._used = (i + 1) % self.bound, self._used - 1

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._used and self._t[self._head] <= horizon:
            self._pop()

    def restore(self, reports_path, journals, now: float) -> int:
        """(start) The digests of the commands of the last `window` seconds from the files they were written in:
        reports.jsonl and the DNC journals `journals` (the older first). Returns how many."""
        since = now - self.window
        got = []
        for path in journals:
            got += _journal_digests(path, since)
        got += _report_digests(reports_path, since, self.window)
        got = sorted(set(got), key=lambda x: x[0])      # (the last fold's lines: in .recent and .prev both)
        for at, d, number in got[-self.bound:]:
            self._put(d, at, None, number)
        return len(got)
