"""A concatenated SMS sent as several SIP MESSAGEs (3GPP TS 24.341 bodies whose SMS-SUBMIT or SMS-DELIVER carries a
concatenation UDH, IEI 0x00 / 0x08: msgbody.Content.concat) judged once, on the text of all its parts, as the SMPP
proxy judges a submit_sm's parts: with its reassembler (engine/smpp_proxy/concat.py `Reassembly`, the one in the
engine), so a spam text split across MESSAGEs is read whole by the rules and the classifier.

Theory of operation. A part's MESSAGE is a non-INVITE server transaction: it waits in `message_parts` under its
message's key -- (the previous hop's address, SMS-SUBMIT or -DELIVER, originator, destination, reference, total; the
numbers as normalise_number reads them), so another peer or sender cannot complete or poison a message -- without an
answer (RFC 4320 §4.1: no provisional response but 100 to a non-INVITE, and over UDP none before Timer E reaches
T2; a final comes long before Timer F, 32 s), its transaction marked PENDING in `messages_tx`: a
retransmission of it (Timer E, the same branch) is absorbed, neither judged nor forwarded. The message is judged (one
verdict line, `x<parts>/<total>`, as the SMPP side's) when its last part comes, when `message_concat_timeout` passes
(judged with the parts it has: `message_parts_expire`, from each part and the once-a-second sweep), when
`max_pending_message_concat` messages wait and another starts, or the parts waiting hold more than
`max_pending_message_concat_bytes` in all (the oldest judged first), or at a drain or stop. Then every part gets the
message's answer once, as one MESSAGE would: a drop refuses each part with the dropped MESSAGE's response, an allow
forwards each (a tag tags each), and its transaction keeps the answer for its retransmissions. A message judged
without all its parts is remembered (its verdict, its parts' texts, CONCAT_MEMORY seconds, as many messages as wait):
a part that comes later is judged at once on the whole text known then (`late`, committing nothing: its message was
counted; a drop remembered is never undone), its line saying `late` and naming its message (`concat`, as its
message's line did: the report ties them). It is remembered before it is judged (SETTLING): under a shared state
store its verdict settles later, and a part coming meanwhile waits for that verdict (`message_parts_settling`), then is
judged late -- it was held as a message of its own and judged on its fragment alone, let through after its message was
dropped (found by review). A second transaction carrying a part that waits (not a retransmission) is the copy judged and
answered; the earlier one is answered 500 at once, never left without an answer.

Bounds: `max_pending_message_concat` messages wait and as many are remembered; the parts waiting hold at most
`max_pending_message_concat_bytes` (each part the memory it holds: `held_size`, its header fields and Vias parsed; its
TCP connection referenced weakly), the messages remembered as much again (`_message_kept`: each part's text cut at
LATE_TEXT and its entries, late parts' included; measured ~2.9 KB a message judged with one part of three, its part's
transaction entry included, which RETRANSMISSIONS bounds apart). A bug of ours met judging a message answers its parts
500 (`_message_parts_failed`), never none. A sender that sends a part only once the one before is answered waits
`message_concat_timeout` once per message (its first part judged alone then, the others late, whole).
"""
from __future__ import annotations

import logging
import sys
import time
import weakref

from ..smpp_proxy.concat import LATE_TEXT, concat_id, joined, reading_of
from ..verdict import Action, Message
from .messaging import PENDING
from .shares import cost

log = logging.getLogger("telfilter.sip")
CONCAT_MEMORY = 86400.0     # seconds a message judged before all its parts came is remembered (SMPP concat_memory's)
# what a held part holds beyond its request's bytes, counted with them toward max_pending_message_concat_bytes so that
# bound is the memory held (`held_size`): its Message, Content and transaction entry (HELD_OVERHEAD), each header field
# parsed (HEADER_HELD: its tuple, name and value objects, first_values' entry), each Via parsed (VIA_HELD) and its
# parameters (VIA_PARAM_HELD). Measured with tracemalloc, 500 parts held each: 331-byte MESSAGEs 5.9 KB; with 240
# headers "X:a" 36 KB, 90 Vias 76 KB, 90 Vias of 10 parameters 161 KB -- counted 6.1, 7.6, 9.5 and 12 KB when only the
# bytes were (a peer held 13 times the bound's memory)
HELD_OVERHEAD = 3_200
HEADER_HELD = 200
VIA_HELD = 600
VIA_PARAM_HELD = 128
# what a part of a message remembered for its late parts holds beyond its text (`_kept_size`): its entries in the
# remembered texts and characters (measured with tracemalloc: 94 B; its 153-character text 202 B)
KEPT_PART = 100
SUPERSEDED = "Server Internal Error (superseded: another copy of this part waits)"
INTERNAL = "Server Internal Error"       # a part whose judging met a bug of ours (_message_parts_failed)
_NONE_YET = frozenset()     # Message.counted of a message judged before all its parts came (submit_concat.py's)
SETTLING = "settling"       # the remembered verdict of a message judged, its verdict not settled yet (shared store)
# a held part: what concat.Reassembly reads ([0] whose it is, [1] its "PDU", [2] text, [3] binary), then what answers it
_SRC, _PDU, _TEXT, _BINARY, _ARGS, _TX, _MSG, _WHAT = range(8)


class _Tpdu:
    """What concat.py reads of a part's PDU: its SMPP data_coding. 8 for a UCS2 part: its text is read joined by
    octets with its UCS2 neighbours' too (concat.joined: a link split at an odd octet), as the SMPP side reads a
    submit_sm's; 0 for any other (GSM 7-bit, 8-bit data: decoded part by part, sms3gpp.py)."""
    __slots__ = ("data_coding",)

    def __init__(self, data_coding: int):
        self.data_coding = data_coding


TPDU, UCS2_TPDU = _Tpdu(0), _Tpdu(0x08)


class Due(float):
    """When a waiting message began (its first part came): it is judged with the parts it has once the timeout in
    force has passed since (`message_parts_expire`), so a reload's timeout applies to those waiting too and they stay
    in deadline order, oldest first. Nothing to cancel (a message judged leaves `pending`, where these are looked
    for)."""
    __slots__ = ()

    def cancel(self) -> None:
        pass


def _party(addr: str, num) -> str:
    """An address as parts are grouped by: the number it names, else its text (an alphanumeric sender)."""
    return addr if num is None else num


def held_size(msg) -> int:
    """The memory a held part's request holds (HELD_OVERHEAD and its kin): O(its header fields and Vias)."""
    return (HELD_OVERHEAD + len(msg.body) + len(msg.uri or "")
            + sum(HEADER_HELD + len(h[0]) + len(h[1]) for h in msg.headers)
            + sum(VIA_HELD + VIA_PARAM_HELD * len(v.params) for v in msg.vias or ()))


def _kept_size(text) -> int:
    """The memory a remembered part's text holds with its entries (cut at LATE_TEXT, as concat.remember keeps it); a
    text of two readings (codec.text.TwoReadings) about three strings."""
    n = sys.getsizeof(text[:LATE_TEXT] if text is not None else "")
    return KEPT_PART + (n if type(text) is str or text is None else 3 * n)


def _held(args) -> tuple:
    """A held part's (msg, dest, branch, transport, src, conn) with its TCP connection weakly referenced: a closed one
    is not kept alive (its parser's unfinished message with it, up to 64 KB) while the part waits."""
    return args if args[5] is None else (*args[:5], weakref.ref(args[5]))


def _live(args) -> tuple:
    """A held part's arguments as it is answered: its connection, or None once gone (answered as a request whose
    connection closed is: over a new connection to its Via's sent-by, RFC 3261 §18.2.2)."""
    c = args[5]
    return args if type(c) is not weakref.ref else (*args[:5], c())


class MessageParts:
    """Mixed into SipScreen (messaging.Messaging sends the parts here; `message_parts` is a concat.Reassembly)."""

    def _message_part(self, m, what, got, tx, args, now):
        """Part `got.concat` of a concatenated SMS, `m` its message as one part would be judged (module text)."""
        ref, total, n = got.concat
        msg, src = args[0], args[4]
        key = (src[0], got.what, _party(m.sender, m.nums[0]), _party(m.recipient, m.nums[1]), ref, total)
        parts, s = self.message_parts, self.s
        if parts.pending:
            self.message_parts_expire(now)              # (between the sweep's looks)
        tpdu = UCS2_TPDU if got.ucs2 else TPDU
        late = parts.late(key, n, got.text, got.binary, now, pdu=tpdu)
        if late is not None:
            return self._message_late(key, n, total, what, got, tx, args, m, late)
        self.stats["message_parts_held"] += 1
        self.messages_tx.put(tx, PENDING, now)         # its retransmissions absorbed meanwhile (messaging.py)
        size = held_size(msg)
        part = (src, tpdu, got.text, got.binary, _held(args), tx, m, what)
        old = parts.add(key, total, n, part, s.max_pending_message_concat, self._message_parts_timer, size,
                        s.max_pending_message_concat_bytes, len(got.text))
        if old is not None and old[_TX] != tx:
            # another transaction with this part (a retransmission is absorbed before it comes here): the newest copy
            # is judged and answered, the older one now, never left without an answer
            self.stats["message_parts_resent"] += 1
            o = _live(old[_ARGS])
            self._message_refused(o[0], old[_TX], o[3], o[4], o[5], 500, SUPERSEDED, old[_MSG].sender,
                                  old[_MSG].recipient)
        if parts.complete(key) or s.message_concat_timeout <= 0:
            parts.judge_now(key)

    def _message_parts_timer(self, key) -> Due:
        return Due(time.monotonic())

    def message_parts_expire(self, now: float) -> None:
        """Judge the messages whose parts have waited their timeout by `now` (time.monotonic()), with what arrived.
        They wait oldest first, each the timeout in force since it began (Due): a look at the first few."""
        pending, began = self.message_parts.pending, now - self.s.message_concat_timeout
        while pending:
            key, c = next(iter(pending.items()))
            if c.timer > began:
                return
            self.message_parts.judge_now(key)

    def message_parts_judge_all(self) -> None:
        """Every waiting message judged now (a drain, a stop): each held part answered."""
        self.message_parts.judge_all()

    def _message_parts_due(self, key) -> None:
        """Message `key` judged (concat.Reassembly's `due`): whole, or with the parts it has. A bug of ours met on the
        way answers each of its parts not answered yet 500 (_message_parts_failed): it never leaves them unanswered
        nor escapes -- from the sweep it killed the sweep task, from another part's arrival (the bound) that part
        was answered 500 in their place."""
        c = self.message_parts.take(key)
        if c is None:
            return
        parts, answered = c.ordered(), set()
        try:
            self._message_whole(key, c, parts, answered)
        except Exception:
            if self.message_parts.judged.get(key, (None,))[0] is SETTLING:
                self.message_parts.forget(key)          # (judged by none: its late parts are judged anew)
            self._message_parts_failed([(_live(p[_ARGS]), p[_TX], p[_MSG]) for i, p in enumerate(parts)
                                        if i not in answered])

    def _message_parts_failed(self, parts) -> None:
        """A bug of ours met judging or answering `parts` ((args, tx, Message) each): each answered 500 once (its
        retransmissions too: messages_tx), as on_message answers a request it meets one on, the error logged once."""
        self.stats["internal_errors"] += 1
        log.exception("internal error on a concatenated SMS in SIP MESSAGEs from %s: its parts answered 500",
                      parts[0][0][4] if parts else "?")
        for args, tx, m in parts:
            try:
                msg = args[0]
                if msg.our_via:
                    msg.pop_first_value("Via")
                self._message_refused(msg, tx, args[3], args[4], args[5], 500, INTERNAL, m.sender, m.recipient)
            except Exception:
                log.exception("could not answer 500 to %s", args[4])

    def _message_whole(self, key, c, parts, answered) -> None:
        """Message `key` (its Pending `c`, `parts` in order) judged and each part answered (its index in `answered`
        once it is)."""
        incomplete = len(parts) < c.total
        if incomplete:
            self.stats["message_concat_incomplete"] += 1
            log.info("concatenated SMS in SIP MESSAGEs, reference %s from %r: %d of %d parts; judging what arrived",
                     key[4], key[2], len(parts), c.total)
        binary = any(p[_BINARY] for p in parts)
        text = joined([p[_TEXT] for p in parts], binary, c.parts)
        m0 = parts[0][_MSG]
        m = Message(m0.sender, m0.recipient, text, self.clock(), "", "mt", m0.sender_ton, m0.recipient_ton, m0.nums,
                    counted=_NONE_YET if incomplete else None)

        s = self.s
        until = time.monotonic() + max(s.message_concat_timeout, CONCAT_MEMORY)
        if incomplete:
            # remembered before it is judged: a part coming while a shared store settles its verdict is its late
            # part (it waits for that verdict: _message_late), not a message of its own judged on its fragment alone
            self.message_parts.remember(key, SETTLING, until, c, s.max_pending_message_concat)
            self._message_kept(key, sum(_kept_size(p[_TEXT]) for p in parts), True)

        def then(v, d):
            if incomplete:                              # for the parts still to come: judged late, whole
                if self.message_parts.remembers(key, time.monotonic()):
                    self.message_parts.settle(key, v)   # (the texts of late parts come meanwhile kept)
                else:
                    self.message_parts.remember(key, v, until, c, s.max_pending_message_concat)
                    self._message_kept(key, sum(_kept_size(p[_TEXT]) for p in parts), True)
            now = time.monotonic()
            for p in parts:
                self.messages_tx.put(p[_TX], d, now)
            for i, p in enumerate(parts):
                answered.add(i)
                a = _live(p[_ARGS])
                try:
                    self._message_decided(*a, d)
                except Exception:
                    self._message_parts_failed([(a, p[_TX], p[_MSG])])
            for late in self.message_parts_settling.pop(key, ()):
                late(v)                                 # (_message_late answers its part whatever happens)
        # a message that may have late parts names itself on its line, as they will on theirs
        self._message_judge(m, f"{parts[0][_WHAT]} x{len(parts)}/{c.total}", binary, then,
                            concat=concat_id(key) if incomplete else None, reading=reading_of(text, None))

    def _message_late(self, key, n, total, what, got, tx, args, m, late):
        """Part `n` of a message judged before it came: judged on the whole text known now, nothing committed (its
        message was counted when judged: Message.counted); never let through when its message was dropped."""
        try:
            self._message_late_judged(key, n, total, what, got, tx, args, m, late)
        except Exception:                               # (not left PENDING: its retransmissions absorbed, unanswered)
            self._message_parts_failed([(args, tx, m)])

    def _message_late_judged(self, key, n, total, what, got, tx, args, m, late):
        earlier, whole = late
        if earlier is SETTLING:                         # its message's verdict not settled yet: judged once it is
            self.messages_tx.put(tx, PENDING, time.monotonic())
            self.message_parts_settling.setdefault(key, []).append(
                lambda v: self._message_late(key, n, total, what, got, tx, args, m, (v, whole)))
            return
        self.stats["message_parts_late"] += 1
        # judged on the whole text known, so charged for it beyond what its own text was (messaging.py): it was one
        # unit, and a part sent again and again was ~40,000 characters judged (1.2 ms, ~14 INVITEs) for each
        extra = cost(len(whole)) - cost(len(got.text), got.parts)
        if extra > 0:
            self.shares.charge(args[4][0], extra)
        self.messages_tx.put(tx, PENDING, time.monotonic())
        self._message_kept(key, _kept_size(got.text))  # (concat.late kept its text with the message's)
        m.text, m.counted = whole, earlier.counted

        def then(v, d):
            if earlier.action is Action.DROP and v.action is not Action.DROP:
                d = self._decision(earlier)
            self.messages_tx.put(tx, d, time.monotonic())
            self._message_decided(*args, d)
        self._message_judge(m, f"{what} part {n}/{total} late", got.binary, then, commit=False, late=True,
                            concat=concat_id(key), reading=reading_of(whole, None))

    def _message_kept(self, key, size: int, anew: bool = False) -> None:
        """Message `key`, remembered for its late parts (concat.Reassembly.judged), holds `size` bytes more (`anew`:
        in all, remembered again). What they hold in all is bounded as the parts waiting are
        (max_pending_message_concat_bytes, a budget of its own): over it the messages remembered longest are
        forgotten -- their late parts are judged as messages of their own. Their count bounded only, 1,024 messages
        of 254 parts held 76 MB for a day (CONCAT_MEMORY)."""
        kept = self.message_parts_kept                  # key -> bytes its remembered texts hold, oldest first
        was = kept.pop(key, 0)
        if anew:
            self.message_parts_kept_size -= was
            was = 0
        kept[key] = was + size
        self.message_parts_kept_size += size
        s, judged = self.s, self.message_parts.judged
        while len(kept) > 1 and (self.message_parts_kept_size > s.max_pending_message_concat_bytes
                                 or len(kept) > s.max_pending_message_concat):
            k, n = kept.popitem(last=False)             # (one judged forgets by itself is let go here too)
            self.message_parts_kept_size -= n
            if judged.get(k) is not None:
                self.message_parts.forget(k)
