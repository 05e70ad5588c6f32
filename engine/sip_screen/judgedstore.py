"""The SIP screen's memory of the INVITEs it judged, carried across a clean stop and start in the answered-call
memory's file (dialogstore.py: one format, one writer, the periodic save's too). No I/O.

Theory of operation: a retransmission of a judged INVITE (RFC 3261 §17.1.1.2: the same top Via branch and CSeq, for
Timer B, 64*T1 = 32 s) gets the call's decision again without being judged (`transactions`, screening.py): judging
it again counts it twice against the caps (an ad call refused by its own count) and writes a second verdict line.
A rolling upgrade restarts serve in a few seconds, well within those 32 s, and `transactions` is keyed with the
interpreter's hash, which is keyed per process: nothing of it can be found again by the next one. So every INVITE
judged is also remembered under keys that are the same in every process: its ack_key (recent.ack_key: BLAKE2b of
its top Via branch and Call-ID, which every INVITE with a branch computes already; of an RFC 2543 one's top Via
sent-by, From tag, Request-URI and Call-ID: calllog.refused_key) -> our branch, its Decision and
the time it was judged -- one let through in `invites` beside where it went (forwarding._went: the entry it had,
one element longer; no other memory, no other allocation on a forwarded call's way: its cost per call did not
move), one rejected in `rejected` (server.py). Our branch (routing._branch: BLAKE2b of the top branch,
Request-URI, Call-ID, CSeq number, From tag, To tag) is what a retransmission must compute again to be one.
`columns` writes the entries still within RETRANSMISSIONS with their ages; `carry` reads them back into the next
screen's `carried` (a copy there gets the decision again, screening._carried: no verdict line, no count, the same
final response to a dropped one, a forwarded one forwarded again where it went with the same branch), a forwarded
one into `invites` (its CANCEL and non-2xx ACK go there too; a restart within its 32 s saves it again) and a
refused one into `rejected` (its CANCEL is answered 200 here and its ACK absorbed, as before the restart).
Ages count the time the screen was down (by the wall clock), so an entry expires when it would have.

Not carried: `verdicts` and `retries` (the call tried again on its verdict after a 401/407, a 3xx or a 5xx: a new
branch, judged again after a restart), INVITEs waiting for a verdict or being judged at the stop (their
retransmission is judged), an INVITE whose forward failed (its retransmission gets our
503 again, forwarding.UNSENT; after a restart it is judged again). A copy is recognised by the INVITE's branch,
Call-ID, Request-URI, CSeq number and tags, not by its whole From value as `transactions` is (those are not kept in
a form another process can compare): within 32 s of a start, an INVITE that repeats all of those with another From
display name or user gets the verdict of the one it copies, and goes where that one went with its branch (the next
hop takes it for that retransmission)."""
from __future__ import annotations

import math
import re

from ..verdict import Action
from .dialogstore import _f64, _read
from .recent import DIGEST_SIZE, Recent
from .screening import BUSY, CANCELLED, RETRANSMISSIONS, VERDICTS, Decision
from .settings import BRANCH_PREFIX, TRANSPORTS

BRANCH_BYTES = 10               # routing._branch: BRANCH_PREFIX and 10 bytes of BLAKE2b in hex
MAX_SYMBOLS = 64                # a decision's symbols read back, each at most MAX_SYMBOL characters
MAX_SYMBOL = 128
SYMBOL = re.compile(r"[A-Za-z0-9_]+\Z")
MAX_HOST = 64                   # forwarding._forward keeps no destination host longer
PASSED = Decision(Action.ALLOW, 0, (), (), 0.0)     # let through untagged: `invites` keeps 0 (forwarding._went)
COLUMNS = ("tx_keys", "tx_branches", "tx_ages", "tx_decisions", "tx_decision_of", "tx_dests", "tx_dest_of")


def _live(screen, now: float) -> list:
    """(ack_key, time judged, (our branch, Decision, destination)) of the INVITEs judged within RETRANSMISSIONS before
    `now`, oldest first, at most VERDICTS: the carried ones (a restart within the 32 s of the last), the rejected
    ones and those let through (`invites` entries with a Decision: forwarding._went)."""
    out = {}
    for mem in (screen.carried, screen.rejected):
        if mem is not None:
            out.update((k, (t, ent)) for k, (t, ent) in list(mem.d.items()) if now - t <= RETRANSMISSIONS)
    out.update((k, (t, (v[0], v[2] or PASSED, v[1]))) for k, (t, v) in list(screen.invites.d.items())
               if len(v) == 3 and now - t <= RETRANSMISSIONS)
    return sorted(((k, t, ent) for k, (t, ent) in out.items()), key=lambda r: r[1])[-VERDICTS:]


def has_live(screen, now: float) -> bool:
    """Whether there is a judged INVITE to save (an empty answered-call memory is no file only without one). On the
    loop (dialogsave.py, before the fork): no list, no sort -- `_live` took 55-100 ms with the memories full; the
    newest rejected one (`rejected` is in the order judged), then `invites` until one is found (~7 ms at most)."""
    if screen.carried is not None and len(screen.carried) and now <= screen.carried_until:
        return True                             # (its newest one is within RETRANSMISSIONS: carry)
    rejected = screen.rejected.d
    if rejected and now - next(reversed(rejected.values()))[0] <= RETRANSMISSIONS:
        return True
    return any(len(v) == 3 and now - t <= RETRANSMISSIONS for t, v in screen.invites.d.values())


def _savable(dest):
    """`dest` as the file can hold it: None (computed again at the copy) for a host longer than MAX_HOST or not
    UTF-8 (a Route host the codec kept as surrogates: msgpack cannot write it, and one made the whole save fail)."""
    if dest is None or len(dest[0]) > MAX_HOST:
        return None
    try:
        dest[0].encode("utf-8")
    except UnicodeEncodeError:
        return None
    return dest


def columns(screen, now: float) -> dict:
    """The judged INVITEs as the file's columns, at `now` (time.monotonic() of the save)."""
    readable: dict = {}                         # Decision -> whether _decision reads it back
    rows = [r for r in _live(screen, now) if len(r[0]) == DIGEST_SIZE and r[2][0].startswith(BRANCH_PREFIX)
            and len(r[2][0]) == len(BRANCH_PREFIX) + 2 * BRANCH_BYTES and _readable(r[2][1], readable)]
    decisions: dict = {}
    dests: dict = {}
    return {"tx_keys": b"".join(k for k, _, _ in rows),
            "tx_branches": b"".join(bytes.fromhex(e[0][len(BRANCH_PREFIX):]) for _, _, e in rows),
            "tx_ages": _f64([max(0.0, now - t) for _, t, _ in rows]),
            "tx_decision_of": [decisions.setdefault(e[1], len(decisions)) for _, _, e in rows],
            "tx_dest_of": [-1 if (x := _savable(e[2])) is None else dests.setdefault(x, len(dests)) for _, _, e in rows],
            "tx_decisions": [_packed(d) for d in decisions],
            "tx_dests": [list(x) for x in dests]}


def _packed(d) -> list:
    return [int(d.action), d.code, list(d.drop_symbols), list(d.symbols), float(d.score)]


def _readable(d, memo: dict) -> bool:
    """Whether the Decision `d` is one `_decision` reads back: one of more than MAX_SYMBOLS symbols or a symbol over
    MAX_SYMBOL characters (a rule's symbol has no bound) is not written (its copy is judged again after the start):
    written, it made the next start refuse the whole file, the calls in progress with it."""
    ok = memo.get(d)
    if ok is None:
        try:
            _decision(_packed(d))
            ok = True
        except (ValueError, TypeError):
            ok = False
        memo[d] = ok
    return ok


def _symbols(v) -> tuple:
    """A decision's symbols read back: names as rules write them (letters, digits, '_'): they go into the Reason and
    tag headers of the copies' answers, where a planted CR LF, quote or comma would write headers of its own."""
    if not isinstance(v, list) or len(v) > MAX_SYMBOLS \
            or not all(isinstance(s, str) and 0 < len(s) <= MAX_SYMBOL and SYMBOL.match(s) for s in v):
        raise ValueError("a decision's symbols are not a list of at most %d names" % MAX_SYMBOLS)
    return tuple(v)


def _decision(v) -> Decision:
    if not isinstance(v, list) or len(v) != 5:
        raise ValueError("a decision is not [action, code, drop symbols, symbols, score]")
    action, code, drop, syms, score = v
    if type(action) is not int or action not in Action._value2member_map_:
        raise ValueError("a decision's action is not one")
    if type(code) is not int or not (300 if action == Action.DROP else 0) <= code <= 699:
        raise ValueError("a decision's status code is not a final one")
    if type(score) not in (int, float) or not math.isfinite(score):
        raise ValueError("a decision's score is not a number")
    d = Decision(Action(action), code, _symbols(drop), _symbols(syms), float(score))
    return next((c for c in (CANCELLED, BUSY, PASSED) if c == d), d)   # (the screen knows those by identity)


def _dest(v):
    if not isinstance(v, list) or len(v) != 3:
        raise ValueError("a destination is not [host, port, transport]")
    host, port, transport = v
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST or type(port) is not int \
            or not 0 < port < 65536 or transport not in TRANSPORTS:
        raise ValueError("a destination is not an address, a port and a transport")
    return (host, port, transport)


def rows(d: dict) -> list:
    """The entries of a dump's judged-INVITE columns as (ack_key, age, (our branch, Decision, destination)), oldest
    first; ValueError if they are not such columns."""
    try:
        keys, branches, ages, decisions, decision_of, dests, dest_of = (d[c] for c in COLUMNS)
    except KeyError as e:
        raise ValueError(f"no column {e}") from None
    if not all(isinstance(c, list) for c in (decisions, decision_of, dests, dest_of)) \
            or not all(isinstance(c, bytes) for c in (keys, branches, ages)):
        raise ValueError("a judged-INVITE column is not a list or bytes")
    n = len(decision_of)
    if len(keys) != DIGEST_SIZE * n or len(branches) != BRANCH_BYTES * n or len(ages) != 8 * n or len(dest_of) != n:
        raise ValueError("the judged-INVITE columns are not of one length")
    decisions = [_decision(v) for v in decisions]
    dests = [_dest(v) for v in dests]
    if not all(type(i) is int and 0 <= i < len(decisions) for i in decision_of) \
            or not all(type(i) is int and (0 <= i < len(dests) or i == -1) for i in dest_of):
        raise ValueError("a judged INVITE's decision or destination index is out of range")
    a = _read(ages, "d")
    if not all(0.0 <= x <= RETRANSMISSIONS for x in a):      # (a NaN fails too)
        raise ValueError("a judged INVITE's age is not a number of seconds from 0 to %g" % RETRANSMISSIONS)
    dests.append(None)                          # (-1: the last)
    return [(keys[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE], a[i],
             (BRANCH_PREFIX + branches[i * BRANCH_BYTES:(i + 1) * BRANCH_BYTES].hex(),
              decisions[decision_of[i]], dests[dest_of[i]])) for i in range(n)]


def carry(screen, entries: list, down: float, now: float) -> int:
    """Put `entries` (rows()) in `screen`'s `carried`, `down` seconds after they were saved (the time the screen was
    down), at `now` (time.monotonic()): those still within RETRANSMISSIONS, their times as old as they are; a
    forwarded one's destination and branch in `invites`. The number carried."""
    mem = Recent(VERDICTS, RETRANSMISSIONS)
    last = None
    for k, age, ent in entries:
        t = now - age - down
        if now - t > RETRANSMISSIONS:
            continue
        mem.put(k, ent, t)
        if ent[1].action is Action.DROP:        # a refusal's CANCEL answered 200 here, its ACK absorbed (proxying.py)
            screen.rejected.put(k, ent, t)
        elif ent[2] is not None:
            screen.invites.put(k, (ent[0], ent[2], ent[1] if ent[1].action else 0), t)   # (as forwarding._went)
        last = t if last is None else max(last, t)
    if last is None:
        return 0
    screen.carried, screen.carried_until = mem, last + RETRANSMISSIONS
    return len(mem)


def expire_judged(screen, now: float) -> None:
    """The sweeper's (bounds.py, every second): the rejected INVITEs judged over RETRANSMISSIONS before `now` leave
    `rejected` (put in the order they were judged: the oldest first), and `carried` goes once none of it can match.
    Else a screen that ever refused 131,072 INVITEs kept them all (~47 MB) for nothing."""
    rejected = screen.rejected.d
    while rejected and now - next(iter(rejected.values()))[0] > RETRANSMISSIONS:
        rejected.popitem(last=False)
    if screen.carried is not None and now > screen.carried_until:
        screen.carried = None
