"""Concatenated messages put together before they are judged, for both directions: the submit
path (submit.py: an ESME's submit_sm / data_sm parts) and the MO path (mo.py: the SMSC's
deliver_sm / data_sm parts).

Theory of operation. A concatenated message (UDH IEI 0x00 / 0x08, or the SAR TLVs) is judged
once, on the text of all its parts: a rule or the classifier never sees a fragment, and a 5656
command is read whole. Each direction keeps one `Reassembly`. A part waits in `pending` under
its message's key, unanswered, until every part is in, the owner's reassembly timer fires, or
`bound` messages are waiting when a new one starts (the oldest is then judged with the parts
it has). Each of these ends in the owner's `due(key)`, which `take`s the message, judges the
joined text and answers every part. A message judged before all its parts came is remembered
in `judged` (its verdict, until when, and each part's text cut at LATE_TEXT characters), so a
part that comes later is judged on the whole text known then (`late`), never on its fragment
alone. `judged` holds at most `bound` messages too, the oldest forgotten first.

No I/O and no clock here: the owner starts the timers (`start_timer(key)` returns something
with `cancel()`) and passes the time in.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from .codec.text import TwoReadings, Ucs2Octets, is_ucs2, ucs2_decode

LATE_TEXT = 320         # characters of each part kept to judge a late part with (two SMS' worth)
REFUSED = "refused"     # the verdict `late` gives a part of a message refused whole (`refuse`): too long
SPREAD = "spread"       # ... refused whole for its parts' schedules (submit_concat.py PARTS_SPREAD)
OVERLAP = "overlap"     # ... refused whole: its parts and another message's go to one handset (Handsets)


@dataclass
class Pending:
    """One concatenated message waiting for its parts."""
    total: int
    # part number -> (peer, pdu, text, binary, ...): the peer answers that part; the owner may add fields
    parts: dict = field(default_factory=dict)
    timer: object = None
    size: int = 0                                   # bytes its parts hold (their PDUs)
    chars: int = 0                                  # characters of text in its parts
    sizes: dict = field(default_factory=dict)       # part number -> (bytes, characters)

    def ordered(self) -> list:
        """The parts that arrived, in part order (the order the handset shows them in)."""
        return [self.parts[i] for i in sorted(self.parts)]


def joined(texts, binary: bool, parts=None) -> str:
    """The text a concatenated message is judged on: its parts' texts in part order, so that a URL
    or a keyword split across two parts is read whole. Binary parts' readable fragments (URLs
    found in them) are kept apart by a space: two of them never run into one. A part whose UCS-2 is broken
    (codec.text.Ucs2Octets, a TwoReadings with `octets`) is read joined by octets too (`octet_joined`):
    both readings judged (TwoReadings, `shown` the parts' own). `parts`: {part number: part} of these texts
    (a part a tuple whose [1] is its PDU, or its text), for which are UCS-2 and which are missing."""
    if binary:
        return " ".join(t for t in texts if t)
    if not any(type(t) is not str for t in texts):
        return "".join(texts)
    if any(type(t) is TwoReadings for t in texts):
        # a part whose UCS-2 may be Latin-1 mislabelled has two readings: each joined with the other parts' texts
        text = TwoReadings("".join(t.shown if type(t) is TwoReadings else t for t in texts),
                           "".join(t.meant if type(t) is TwoReadings else t for t in texts))
    else:
        text = "".join(texts)
    if all(getattr(t, "octets", None) is None for t in texts):
        return text
    octets = octet_joined(texts, parts)
    if octets == (text.shown if type(text) is TwoReadings else text):
        return text
    if type(text) is TwoReadings:
        # Latin-1 mislabelled too: the command a 5656 message carries is parsed in `shown`, then in `meant`
        return OctetsJoined(text.shown + "\n" + octets, text.meant)
    return OctetsJoined(text, octets)


class OctetsJoined(TwoReadings):
    """A concatenated message's text read part by part (`shown`, as a handset that decodes each part shows it) and
    with its UCS-2 parts' octets joined (`meant`), both judged: its verdict line's reading is OCTETS_JOINED."""


OCTETS_JOINED = "ucs2-octets-joined"


def reading_of(text, reading):
    """The reading a verdict line names for concatenated message `text`: OCTETS_JOINED when its parts' octets
    were read joined too, else `reading`."""
    return OCTETS_JOINED if type(text) is OctetsJoined else reading


def _octets(t, part) -> bytes | None:
    """A part's UCS-2 user data: carried (broken), or its text re-encoded (UCS-2); None when it is not UCS-2."""
    o = getattr(t, "octets", None)
    if o is not None:
        return o
    if part is None or isinstance(part, str) or not is_ucs2(part[1].data_coding):
        # (a stored text, not carrying its octets: its coding is not known)
        return None
    return (t.shown if type(t) is TwoReadings else t).encode("utf-16-be", "surrogatepass")


def _shifted(octets: bytes) -> bool:
    """Whether UCS-2 octets look shifted by one: more NUL octets at odd offsets than at even ones (Latin-script
    text, Vietnamese included, has its NULs as each unit's high octet, at even offsets)."""
    return octets[1::2].count(0) > octets[0::2].count(0)


def octet_joined(texts, parts=None) -> str:
    """The text of a concatenated message whose UCS-2 parts' octets are joined before they are decoded (what an
    SMSC or handset that joins them shows: a link split at an odd octet, or a surrogate pair split between two
    parts, reads whole). A run of UCS-2 parts stops at a part that is not UCS-2 (its own text is read there) and
    at a missing part (`parts`' numbers; without them the texts are taken as consecutive parts, and a part that
    carries no octets as not UCS-2). A part that ends in an odd NUL octet is read as a client's padding (a C
    string's end, as read_text reads it) unless the next part looks shifted by an octet (`_shifted`: then the NUL is
    the first half of a character split there, ASCII's high octet): a client padding every part did not get a
    second, shifted reading of its whole message (CJK noise: twice the text judged, a long one refused)."""
    numbers = sorted(parts) if parts is not None else range(len(texts))
    out, run, last = [], b"", None
    for n, t in zip(numbers, texts):
        o = _octets(t, parts.get(n) if parts is not None else None)
        if run and (o is None or n != last + 1):
            out.append(ucs2_decode(run))
            run = b""
        if o is None:
            out.append(t.shown if type(t) is TwoReadings else t)
        else:
            if len(run) & 1 and run[-1] == 0 and not _shifted(o):
                run = run[:-1]                      # padding, not half a character
            run += o
        last = n
    if run:
        out.append(ucs2_decode(run))
    return "".join(out)


def concat_id(key) -> str:
    """The identity of concatenated message `key` (its reassembly key: peer (an MO's: its SMSC, mo_origin),
    originator, destination, reference, total) as its verdict lines name it (`"concat"`): the line of a
    message judged before all its parts came and the `"late"` lines of its parts carry the same one, so a
    reader (the regulator's report) ties a late part to its message. A digest of the key's text: the same in
    every process and after a restart (mo_restore.py), and no number spelled out. Keys reused (the reference
    numbers of one originator and destination wrap) name the newest message of that key, as `late` does."""
    return hashlib.blake2b(repr(key).encode("utf-8", "backslashreplace"), digest_size=8).hexdigest()


def _cut(text, n: int):
    return text.cut(n) if type(text) is not str and text is not None else (text or "")[:n]


def _kept(part):
    """The text a remembered part keeps: a UCS-2 one its octets too (a late part is then read joined by octets with
    it: a stored text's coding is not known). Every UCS-2 part, broken or not: a middle part shifted by one octet
    reads as intact UCS-2 (CJK), and sent first and judged alone it had kept no octets, so its late neighbours were
    never read joined with it (found by review50)."""
    t = part[2]
    if t is None or getattr(t, "octets", None) is not None or not is_ucs2(part[1].data_coding):
        return t
    if type(t) is TwoReadings:
        return TwoReadings(t.shown, t.meant, t.shown.encode("utf-16-be", "surrogatepass"))
    return Ucs2Octets(t, t.encode("utf-16-be", "surrogatepass"))


class Reassembly:
    """The concatenated messages of one direction waiting for their parts (`pending`, oldest
    first) and those judged before all their parts came (`judged`, for late parts)."""

    def __init__(self, due: Callable):
        # key -> Pending, oldest first: an OrderedDict, whose first key is O(1) -- a plain dict's is no queue (each
        # key taken leaves a hole next(iter()) steps over until the next resize: at the bound, 20,000, every new
        # message's eviction stepped over ~12,000 holes on average, 2.7 -> 11 µs an add)
        self.pending: OrderedDict = OrderedDict()
        self.judged: OrderedDict = OrderedDict()         # key -> (verdict | REFUSED, until, {part: text}, {part: chars})
        self.due = due                                   # due(key): take, judge and answer it
        self.size = 0                                    # bytes waiting in all
        # peer -> {key: its parts there}: the messages a peer has parts in (`judge_of`), so an unbind judges its
        # own without a walk over every message waiting (20,000 of others': 7-16 ms of the loop per unbind)
        self.by_peer: dict = {}

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, key, total: int, n: int, part: tuple, bound: int, start_timer: Callable, size: int = 0,
            max_size: int = 0, chars: int = 0):
        """Hold part `n` of message `key`; returns the copy of part `n` it replaces (the peer sent the
        part again: the newest copy is the one judged and answered, the caller answers the older
        one now) or None. When `bound` messages are waiting already, the oldest is judged first,
        with the parts it has: the table never holds more than `bound` messages. `size`: the bytes the
        part holds, `chars` its text's characters; over `max_size` bytes in all (when given) the oldest
        other messages are judged now (the owner bounds one message's own: Pending.size, .chars)."""
        c = self.pending.get(key)
        if c is None:
            if len(self.pending) >= bound:
                self.judge_now(next(iter(self.pending)))
            c = self.pending[key] = Pending(total)
            c.timer = start_timer(key)
        old = c.parts.get(n)
        c.parts[n] = part
        if old is not None:
            self._release(old[0], key)
        held = self.by_peer.setdefault(part[0], {})
        held[key] = held.get(key, 0) + 1
        was, was_chars = c.sizes.get(n, (0, 0))
        c.sizes[n] = (size, chars)
        c.size += size - was
        c.chars += chars - was_chars
        self.size += size - was
        while max_size and self.size > max_size:
            # the oldest other message, judged now: a step or two into the table, not a copy of all its keys
            # (at the bound that was every new part's cost: 20,000 keys a part)
            k = next((k for k in self.pending if k != key), None)
            if k is None:
                break
            self.judge_now(k)
            if k in self.pending:       # (its owner keeps it: nothing more to gain here)
                break
        return old

    def complete(self, key) -> bool:
        c = self.pending.get(key)
        return c is not None and len(c.parts) == c.total

    def judge_now(self, key) -> None:
        """Judge message `key` now, with the parts it has (complete, pushed out by the bound, or
        the proxy is stopping); nothing when it is not waiting any more."""
        c = self.pending.get(key)
        if c is not None:
            c.timer.cancel()
            self.due(key)

    def judge_all(self) -> None:
        """Judge every waiting message now."""
        for key in list(self.pending):
            self.judge_now(key)

    def judge_of(self, peer) -> None:
        """Judge now every waiting message with a part from `peer` (it can send no more: unbound or half-closed);
        the cost is that peer's messages, not all that wait."""
        for key in list(self.by_peer.get(peer, ())):
            self.judge_now(key)

    def _release(self, peer, key) -> None:
        held = self.by_peer.get(peer)
        if held is not None:
            left = held.get(key, 0) - 1
            if left > 0:
                held[key] = left
            else:
                held.pop(key, None)
                if not held:
                    del self.by_peer[peer]

    def take(self, key) -> Pending | None:
        """Message `key` out of the table, to be judged (None: it was judged already)."""
        c = self.pending.pop(key, None)
        if c is not None:
            self.size -= c.size
            for p in c.parts.values():
                self._release(p[0], key)
        return c

    def refuse(self, key, until: float, bound: int, why: str = REFUSED) -> Pending | None:
        """Take message `key` out unjudged (the owner refuses every part it has) and refuse its parts that
        come until `until` too (`late` gives `why`, REFUSED or SPREAD, as their verdict)."""
        c = self.take(key)
        if c is not None:
            c.timer.cancel()
        self.judged[key] = (why, until, {}, {})
        if len(self.judged) > bound:
            self.judged.popitem(last=False)
        return c

    def remember(self, key, verdict, until: float, c: Pending, bound: int) -> None:
        """Keep the verdict of a message judged without all its parts, and its parts' texts (each cut
        at LATE_TEXT: the memory stays bounded by `bound` messages), for its late parts."""
        self.judged[key] = (verdict, until, {i: _cut(_kept(p), LATE_TEXT) for i, p in c.parts.items()},
                            {i: c.sizes.get(i, (0, 0))[1] for i in c.parts})
        if len(self.judged) > bound:
            self.judged.popitem(last=False)

    def drop_part(self, key, n: int, part) -> bool:
        """Take part `n` (this very copy) out of waiting message `key` again (it is to be delivered anew);
        False when it is not there (its message was judged, or another copy replaced it)."""
        c = self.pending.get(key)
        if c is None or c.parts.get(n) is not part:
            return False
        del c.parts[n]
        self._release(part[0], key)
        size, chars = c.sizes.pop(n, (0, 0))
        c.size -= size
        c.chars -= chars
        self.size -= size
        return True

    def extend(self, key, until: float) -> None:
        """Remember judged message `key` until `until` at least."""
        e = self.judged.get(key)
        if e is not None and e[1] < until:
            self.judged[key] = (e[0], until, e[2], e[3])

    def remembers(self, key, now: float) -> bool:
        """Judged message `key` is still remembered (for its late parts) at `now`."""
        e = self.judged.get(key)
        return e is not None and e[1] >= now

    def forget(self, key) -> None:
        """Judged message `key` no longer remembered (a part with its key belongs to a new message)."""
        self.judged.pop(key, None)

    def settled(self, key, verdict, until: float, bound: int) -> None:
        """Remember message `key` as judged with `verdict`, no text kept (its late parts are not judged again)."""
        self.judged[key] = (verdict, until, {}, {})
        if len(self.judged) > bound:
            self.judged.popitem(last=False)

    def settle(self, key, verdict) -> None:
        """The verdict a judged message has now (its late part was the one that got it recorded)."""
        e = self.judged.get(key)
        if e is not None:
            self.judged[key] = (verdict, e[1], e[2], e[3])

    def late(self, key, n: int, text: str, binary: bool, now: float, max_chars: int = 0, pdu=None):
        """(earlier verdict, whole text) when part `n` of `key` comes after its message was judged:
        the whole text is the earlier parts' and this one's in part order (a link split across a
        late part is read whole). None when it was not judged, or too long ago (`until` passed), or this
        part number came with another text (either way the peer reuses the reference number for a new
        message). REFUSED for a part of a message refused whole, or whose characters with this part's are
        over `max_chars` (when given); SPREAD for one refused whole for its parts' schedules. `pdu`: the part's (is
        it UCS-2: read joined by octets with the remembered parts, `joined`)."""
        e = self.judged.get(key)
        if e is None:
            return None
        verdict, until, texts, chars = e
        if until < now:
            del self.judged[key]
            return None
        seen = texts.get(n)
        if seen is not None and seen != _cut(text, LATE_TEXT):
            del self.judged[key]                        # a part it had, with another text: the peer reuses the
            return None                                 # reference number for a new message
        chars[n] = len(text or "")                      # (a part sent again counts once)
        if verdict is SPREAD or verdict is OVERLAP:
            return verdict, ""                          # so is this part
        if verdict is not REFUSED and max_chars and sum(chars.values()) > max_chars:
            verdict = REFUSED
            self.judged[key] = (REFUSED, until, {}, {})
        if verdict is REFUSED:
            return REFUSED, ""                          # so is this part
        texts[n] = _cut(text if pdu is None else _kept((None, pdu, text)), LATE_TEXT)   # (its octets: _kept)
        whole = joined([text if i == n else texts[i] for i in sorted(texts)], binary,
                       texts if pdu is None else {**texts, n: (None, pdu)})
        return verdict, whole


class Handsets:
    """Which messages' parts each handset gets, for the submit path's messages whose parts go to several
    destinations (submit_multi): a handset puts parts together by originator, reference and total alone, so
    a submit_sm part to A and a submit_multi part to {A, B} are one message on A's screen though the proxy
    groups them apart (by their destinations). `by` maps (account, originator, handset, reference, total) to
    the keys of the last PER_HANDSET messages whose parts went there (refused ones make room first: `add`); a
    part's text on that screen may come from any of them (S part 1 to A, M part 2 to {A, B}, S part 3 to A show
    1+2+3 on A); `others` finds the other messages still waiting or remembered (`live(key)`) there. At most `bound` handsets are kept, the
    oldest forgotten first (a clash with a message that old is not seen)."""

    PER_HANDSET = 4

    def __init__(self):
        self.by: OrderedDict = OrderedDict()

    def others(self, key, handsets, ref: int, total: int, live: Callable) -> list:
        """[(handset, other key)] of the live messages other than `key` with parts of this reference and total
        to one of `handsets`, each other once (the first handset it shares), oldest first."""
        by, found, seen = self.by, [], {key}
        for h in handsets:
            for other in by.get((key[0], key[1], h, ref, total), ()):
                if other not in seen and live(other):
                    seen.add(other)
                    found.append((h, other))
        return found

    def clash(self, key, handsets, ref: int, total: int, live: Callable):
        """(handset, other key) of the first of `handsets` where a live message other than `key` has parts
        with this reference and total, else None."""
        found = self.others(key, handsets, ref, total, live)
        return found[0] if found else None

    def add(self, key, handsets, ref: int, total: int, bound: int, keep: Callable | None = None) -> None:
        """`key`'s parts go to `handsets`. Past PER_HANDSET messages a handset, those `keep` says put nothing on its
        screen (refused, dropped, forgotten) go first, then the oldest: four PDUs refused at once must not push
        out a message whose part was sent (its text is what the next part would complete)."""
        by, per = self.by, self.PER_HANDSET
        for h in handsets:
            k = (key[0], key[1], h, ref, total)
            keys = by.get(k, ())
            if not keys or keys[-1] != key:         # (a message's later parts: already its newest)
                keys = tuple(x for x in keys if x != key) + (key,)
                while len(keys) > per:
                    gone = next((x for x in keys[:-1] if keep is not None and not keep(x)), keys[0])
                    keys = tuple(x for x in keys if x != gone)
                by[k] = keys
            by.move_to_end(k)
        while len(by) > bound:
            by.popitem(last=False)
