"""The SIP screen's memory of answered calls (`answered`, dialogs.py) across a clean stop and start, and with it its
memory of the INVITEs judged in the last 32 s (judgedstore.py: their retransmissions after the start get their
decisions again; file version 2, the columns `tx_*`; a file of version 1 gives its calls and no judged INVITE).

Theory of operation: at serve's stop, once the screen takes no more messages, `save_dialogs` writes the memory to
DATA_DIR/sip/dialogs.msgpack (msgpack, a temporary file fsynced and renamed over the old one: durable.replace_file);
at the next start, before the screen listens, `restore_dialogs` reads it back. Without it every call in progress at
a restart (an upgrade in business hours) was a stranger to the new process: its RFC 4028 session refresh was judged
as a new call -- an advertiser's refused by its own count, the call torn down; any other's logged a second time (a
second verdict line: counted twice in the regulator's figures) -- and its BYE recorded no duration.

The memory's digests (recent.dialog_digest) are keyed with the screen's `dialog_key`, saved in the file: the next
process adopts it, so a refresh's Call-ID, tags and users hash as they did when the call was answered (the
interpreter's own hash is keyed per process: no entry would be found again). An answer time is on the clock that
times calls (monotonic, not comparable across processes): saved as the call's age, read back as that age plus the
time the screen was down (by the wall clock; 0 if it went back), so a BYE after the restart records the whole call.

The file is bounded as the memory is: at most its 200,000 calls (server.ANSWERED), answered ones and the calls
waiting for their answer (the tier forgotten first) each in their order, oldest first -- restored through the same
Recent, whose bound drops the oldest if a file holds more. The memory has no age limit (a call lasts until its BYE,
or until newer calls push it out), nor has the file. A file that is not this format and version, or whose entries
are malformed, is refused whole with one log line and the screen starts without it: never a crash, never half a
memory. A file with neither a call nor an INVITE judged in the last 32 s is no file (removed). The file is left in
place after a start, replaced at the next clean stop and, while the screen serves, by
the periodic save (dialogsave.py: a forked child writes `dump` every dialog_save_interval seconds when the memory
changed): after a crash the next start has the calls in progress at the last save (those answered in the last
interval are judged again at their refresh: README "Known limits").
"""
from __future__ import annotations

import gc
import logging
import math
import sys
import time
from array import array
from pathlib import Path

import msgpack

from .screening import RETRANSMISSIONS

log = logging.getLogger("telfilter.sip")
life = logging.getLogger("telfilter.service")

FORMAT = "telfilter-sip-dialogs"
VERSION = 2                     # 2: the judged INVITEs too (judgedstore.py); a file of version 1 is read (its calls)
READS = (1, 2)
KEY_BYTES = 16
MAX_ADDRESS = 256               # an INVITE's destination address (forwarding: hosts are addresses, <= 64)
NO_ADDRESS = -1                 # address_of: the INVITE not sent yet
MAX_AGE = 10 ** 9               # seconds (31 years): a call older is no call of ours (a file's age of 1e306 s timed
                                # its BYE at infinity, and CallDurations.add raised on it: the BYE's fast path failed)


def dialogs_file(data_dir) -> Path:
    """Where serve keeps the memory between a stop and a start (worker 0 alone serves SIP: one file)."""
    return Path(data_dir) / "sip" / "dialogs.msgpack"


def _u64(values) -> bytes:
    a = array("Q", values)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def _f64(values) -> bytes:
    a = array("d", values)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def _read(b: bytes, code: str) -> array:
    """A column written by _u64 / _f64 (little-endian) as an array of `code`."""
    a = array(code)
    a.frombytes(b)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _without_gc(f, *args):
    """f(*args) with the cyclic collector off: a full memory is 200,000 entries of tuples made at once, which set off
    collections that walked them again and again (load: 1.4 s with it, 0.25 s without, on a loaded 2-CPU host).
    They hold no cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        return f(*args)
    finally:
        if was:
            gc.enable()


def dump(screen, ticks: float, wall: float, now: float | None = None) -> bytes:
    """The answered-call memory of `screen` at `ticks` (its call_ticks()) and `wall` (POSIX seconds), as bytes: its
    entries in columns (the calls waiting for their answer first, then the answered ones; each tier oldest first),
    the digests as little-endian 64-bit words (a msgpack list per call made the file 25% larger and took longer
    to read back); and the INVITEs judged in the RETRANSMISSIONS before `now` (time.monotonic(): the judged-INVITE
    memory's clock; judgedstore.columns)."""
    from .judgedstore import columns
    from .calllog import _loggable      # an address as msgpack can write it (UTF-8): a Route host of bytes that
    # were not UTF-8 (kept as surrogates by the codec; its INVITE then refused) as \\xNN escapes, as the verdict
    # log writes them (at most 4 x 64 characters: MAX_ADDRESS; no answer's source matches it either): one such
    # address made the whole save fail at the stop, every call in progress forgotten
    mem = screen.answered
    ents = [e for _, e in mem.low.values()] + [e for _, e in mem.d.values()]
    addresses: dict = {}
    none = bytes((len(e) < 5 or e[4] is None) | (len(e) < 6 or e[5] is None) << 1 for e in ents)
    cols = {"keys": _u64(list(mem.low) + list(mem.d)), "callers": [e[0] for e in ents],
            "ages": _f64([math.nan if e[1] is None else max(0.0, ticks - e[1]) for e in ents]),
            "parties": _u64([e[2] for e in ents]),
            "sides": _u64([0 if n & 1 else e[4] for e, n in zip(ents, none)]),
            "tags": _u64([0 if n & 2 else e[5] for e, n in zip(ents, none)]), "none": none,
            "address_of": [NO_ADDRESS if e[3] is None else addresses.setdefault(_loggable(e[3]), len(addresses))
                           for e in ents]}
    cols.update(columns(screen, time.monotonic() if now is None else now))
    return msgpack.packb({"format": FORMAT, "version": VERSION, "key": screen.dialog_key, "saved": wall,
                          "waiting": len(mem.low), "addresses": list(addresses), **cols}, use_bin_type=True)


def _columns(d: dict, since: float):
    """The entries of a dump's columns as (key, (0.0, entry)) pairs, as the memory holds them -- their answer times
    `since` minus their ages --, and how many of them wait for their answer (the first ones); ValueError if they are
    not such columns."""
    from .screening import MAX_CALLER
    try:
        keys, callers, ages, parties, sides, tags, none, addresses, address_of, waiting = (
            d["keys"], d["callers"], d["ages"], d["parties"], d["sides"], d["tags"], d["none"], d["addresses"],
            d["address_of"], d["waiting"])
    except KeyError as e:
        raise ValueError(f"no column {e}") from None
    if not isinstance(callers, list) or not isinstance(addresses, list) or not isinstance(address_of, list):
        raise ValueError("a column is not a list")
    n = len(callers)
    if not all(isinstance(b, bytes) and len(b) == 8 * n for b in (keys, ages, parties, sides, tags)) \
            or not isinstance(none, bytes) or len(none) != n or len(address_of) != n:
        raise ValueError("the columns are not of one length")
    if type(waiting) is not int or not 0 <= waiting <= n:
        raise ValueError("no count of the calls waiting for their answer")
    if not all(isinstance(c, str) and len(c) <= MAX_CALLER for c in callers):
        raise ValueError("a caller is not a string of at most %d characters" % MAX_CALLER)
    if not all(isinstance(a, str) and len(a) <= MAX_ADDRESS for a in addresses):
        raise ValueError("an address is not a string of at most %d characters" % MAX_ADDRESS)
    if not all(type(i) is int and (0 <= i < len(addresses) or i == NO_ADDRESS) for i in address_of):
        raise ValueError("an address index is out of range")
    keys, ages, parties, sides, tags = (_read(b, code) for b, code in
                                        ((keys, "Q"), (ages, "d"), (parties, "Q"), (sides, "Q"), (tags, "Q")))
    if any(not (0.0 <= a <= MAX_AGE) and not math.isnan(a) for a in ages):
        raise ValueError("an age is not a number of seconds from 0 to %d" % MAX_AGE)
    addresses.append(None)                      # (NO_ADDRESS, -1: the last)
    isnan = math.isnan
    rows = [(k, (0.0, (c, None, p, addresses[a], None if fl & 1 else s) if isnan(age)
                 else (c, since - age, p, addresses[a], None if fl & 1 else s, None if fl & 2 else t)))
            for k, c, age, p, a, s, t, fl in zip(keys, callers, ages, parties, address_of, sides, tags, none)]
    return rows, waiting


def load(screen, data: bytes, ticks: float, wall: float, now: float | None = None) -> int:
    """Put the calls of a `dump` back in `screen`'s memory (empty: a screen not started) and adopt its key, and its
    judged INVITEs in `carried` at `now` (time.monotonic(); judgedstore.carry); ValueError, and nothing changed, if
    `data` is not a dump of a version this telfilter reads. The number of calls restored."""
    from .judgedstore import carry, rows
    try:
        d = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.UnpackException, ValueError, TypeError) as e:
        raise ValueError(f"not msgpack ({type(e).__name__})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    if d.get("version") not in READS:
        raise ValueError(f"version {d.get('version')!r}, this telfilter reads versions 1 and {VERSION}")
    key, saved = d.get("key"), d.get("saved")
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError("no key of %d bytes" % KEY_BYTES)
    if type(saved) not in (int, float) or not 0 <= saved < math.inf:     # (before 1970: the time down overflowed)
        raise ValueError("no time saved")
    mem = screen.answered
    if len(mem):
        raise ValueError("the screen has calls of its own already (a file is read before it listens)")
    # the answer times: the time down counts (by the wall clock; 0 if it went back), the call went on meanwhile
    down = max(0.0, wall - saved)
    calls, waiting = _columns(d, ticks - down)
    judged = rows(d) if d["version"] > 1 else []    # (read whole before anything is changed; version 1: none)
    mem.low.update(calls[:waiting])              # each tier in its order, oldest first (Recent: stored at time 0.0)
    mem.d.update(calls[waiting:])
    if len(mem) > mem.size:
        mem._bound()                            # a file of a larger memory: its oldest dropped first
    screen.dialog_key = key
    carry(screen, judged, down, time.monotonic() if now is None else now)
    return len(calls)


def is_empty(screen, now: float) -> bool:
    """Whether there is nothing to save at `now` (time.monotonic()): no call in the answered-call memory and no
    INVITE judged within RETRANSMISSIONS. The file is then removed, not written."""
    from .judgedstore import has_live
    return not len(screen.answered) and not has_live(screen, now)


def save_dialogs(screen, path) -> int:
    """At a clean stop (the screen stopped): the memory to `path`, replaced whole (or removed when the memory is
    empty). OSError if it cannot be written (the old file, if any, is left as it was). The number of calls saved."""
    from ..durable import replace_file
    path = Path(path)
    n, now = len(screen.answered), time.monotonic()
    if is_empty(screen, now):
        path.unlink(missing_ok=True)
        return 0
    replace_file(path, _without_gc(dump, screen, screen.call_ticks(), screen.clock().timestamp(), now))
    return n


def save_at_stop(screen) -> None:
    """The screen's stop (SipScreen.stop; serve's, at its end): `save_dialogs` to the file start_sip named, said
    in the log."""
    path = getattr(screen, "dialogs_file", None)
    if path is None:
        return
    try:
        n = save_dialogs(screen, path)
        if Path(path).exists():
            life.info("SIP: %d calls in progress saved to %s, with the INVITEs judged in the last %g s", n, path,
                      RETRANSMISSIONS)
        else:                           # (it named a file an empty memory had removed)
            life.info("SIP: no call in progress and no INVITE judged in the last %g s: nothing to save",
                      RETRANSMISSIONS)
    except OSError as e:
        log.error("SIP: the calls in progress could not be saved to %s (%s): after the restart their re-INVITEs are "
                  "judged as new calls", path, e.strerror or e)
    except Exception:                   # a bug of ours: the rest of the stop (the state's last save) still runs
        log.exception("SIP: the calls in progress could not be saved to %s: after the restart their re-INVITEs are "
                      "judged as new calls", path)


def restore_dialogs(screen, path) -> int:
    """At a start, before the screen listens: the calls `save_dialogs` wrote to `path`, if any. A file that cannot be
    read or is refused is said in one log line, and the screen starts without it. The number of calls restored."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.error("SIP: %s could not be read (%s): the calls in progress at the last stop are judged as new calls "
                  "at their next re-INVITE", path, e.strerror or e)
        return 0
    try:
        n = _without_gc(load, screen, data, screen.call_ticks(), screen.clock().timestamp())
    except ValueError as e:
        log.error("SIP: %s refused (%s): the calls in progress at the last stop are judged as new calls at their "
                  "next re-INVITE; the file is replaced at the next clean stop", path, e)
        return 0
    except Exception:                   # a bug of ours: the start goes on without the file all the same
        log.exception("SIP: %s could not be read back: the calls in progress at the last stop are judged as new "
                      "calls at their next re-INVITE", path)
        screen.answered.d.clear()
        screen.answered.low.clear()
        screen.carried = None
        return 0
    carried = screen.carried
    life.info("SIP: %d calls in progress restored from %s, and %d INVITEs judged in the last %g s before the stop "
              "(their retransmissions get their verdicts again)", n, path, 0 if carried is None else len(carried),
              RETRANSMISSIONS)
    return n
