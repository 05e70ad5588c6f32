"""The 5656 parts journal's records and the next start (the module text of mo_journal.py is the theory of operation).

A record holds one part's PDU as the SMSC sent it, with its fields beside it (`_owner`: the message's key, the part
number, the message's parts_id, where reports.jsonl ended, when it was written); part number 0 is a done message's
marker, whose payload is its parts' digests (`_digests_raw`), or, the payload led by a 0 octet (no part has number 0),
a message judged whose parts made no command (a syntax error, nothing in force: `made_no_command`), whose parts'
records stay while it waits for its late part. `MoPartsRestore._restore_mo_parts` reads the records the last run
left: messages done are remembered as recorded (their late parts acknowledged, a part whose digest differs taken as
a new message: `mo_same_message`), those judged with no command are remembered so with their parts (their late part
has the whole text judged, as without the restart), the others' parts go back in the reassembly to wait.

An older version (before the no-command marker) cannot read that marker (its digests are not whole): it logs the
record as unreadable and leaves it out, and puts the message's parts back to wait: its late part then completes it
(judged whole, not late), or, none coming, it is judged again NOT_RECORDED_KEEP after its first part (a second
syntax error told).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from ..verdict import Action, Hit, Verdict
from .codec import decode, pdu_concat
from .concat import Pending
from .smsc import parse_addr
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")

# a waiting MO part (mo.py's lists): the link it came on, the PDU, its text, binary, how its text was read,
# answered already (or being, once on disk), its journal record here (0: none), its message's parts_id ("": none)
_LINK, _PDU, _TEXT, _BINARY, _READING, _ANSWERED, _HID, _PID = range(8)
RECORDED = "recorded"        # the verdict of a message restored as done already (its late parts: acknowledged)
NOT_RECORDED_KEEP = 3600.0   # seconds a short-code message not recorded waits for its part again (mo.py)
NO_COMMAND = b"\x00"        # leads a marker's payload: judged, its parts made no command (module text)
# the verdict a message judged with no command before the last restart is remembered with (mo.py's late part reads
# its symbol and action; its line was written in the last run)
JUDGED_NO_COMMAND = Verdict(Action.ALLOW, 0.0, (Hit("SHORTCODE_SYNTAX_ERROR", 0.0, "judged before the last start"),))
RESTORE_WAIT = 10.0          # seconds a start waits for the records its restore wrote before the links bind


def mo_origin(link) -> tuple:
    """Where the parts of a concatenated MO that came on `link` are put together: the SMSC its link belongs to,
    known by the links' message-id space (smpp.toml `id_space`, "" by default: one SMSC however many nodes and
    links), not the address of the node the part came from. A handset's parts are routed each on its own, so a
    cluster's nodes deliver the parts of one message apart (keyed by the node, a 5656 report in two parts through
    two nodes was judged as two messages, a cut report and a syntax error). A restored part's link is a
    `_GoneLink` named by this origin (the journal keeps it as its key's first element)."""
    return ("smsc", link.id_space)


class _GoneLink:
    """The link of a part read back from the journal: it came on a connection of the last run."""
    transport = None
    available = False

    def __init__(self, addr):
        self.addr = addr

    def send_pdu(self, pdu) -> None:     # (never called: such a part was answered in the last run)
        pass


class MoPartsRestore:
    """Mixin of `MoPartsJournal`: the next start, from the records `open_mo_parts` read (the journal's
    `_mo_records_gone` and `_mo_marked` take records out and keep markers, as while running)."""

    async def _restore_mo_parts_on_disk(self) -> None:
        """(start, before any link binds) `_restore_mo_parts`, then what it wrote on disk: a part it gave its
        message's one parts_id (a drain's set-aside) is journalled so before a part can come and the message's
        report line name that id. The two writers are apart (the commands' and this journal's): a crash after
        the line and before the record left the part under its old id, put back to wait, counted again."""
        self._restore_mo_parts()
        w = self.mo_parts_writer
        if w is not None and not await w.idle(RESTORE_WAIT):
            log.error("start: the 5656 message parts journal is still being written after %.0f s (a stalled disk); "
                      "binding the SMSC links anyway", RESTORE_WAIT)

    def _restore_mo_parts(self) -> None:
        """(start) The records read by `open_mo_parts`: messages done remembered as recorded, the others' parts
        back in the reassembly (module text)."""
        live, self._mo_restore = self._mo_restore or [], None
        if not live:
            return
        rl, wall = self.mo_log, time.time()
        keys: dict = {}                    # key -> {"parts": {pid: [(n, part, roff, at)]}, "markers": [...]}
        for hid, owner, raw in live:
            try:
                addr, src, dst, ref, total, n, pid, roff, at = json.loads(owner)
                n, pid, roff, at = int(n), str(pid), int(roff), float(at)
                addr = addr if isinstance(addr, str) else tuple(addr)
                if len(addr) == 2 and isinstance(addr[1], int):
                    addr = self._mo_origin_of_address(addr)
                key = (addr, src, dst, ref, total)
                k = keys.setdefault(key, {"parts": {}, "markers": []})
                if n == 0:                 # a done message's marker: its parts' digests (module text)
                    nc = raw[:1] == NO_COMMAND
                    k["markers"].append((at, hid, pid, _digests_of(raw[1:] if nc else raw), nc))
                    continue
                pdu = decode(raw)
                text, binary, reading = message_content(pdu, self.settings.smsc_text_reading)
                ci = pdu_concat(pdu)
                if ci is None or tuple(ci) != (ref, total, n) or (pdu.source_addr, pdu.destination_addr) != (src, dst):
                    raise ValueError("its concatenation header is not the one recorded")
            except (ValueError, TypeError, KeyError, Refusal) as e:
                log.error("a 5656 message record in %s could not be read back (%s): left out", rl.journal.path, e)
                rl.gone(hid)
                continue
            part = [_GoneLink(key[0]), pdu, text, binary, reading, True, hid, pid]
            k["parts"].setdefault(pid, []).append((n, part, roff, at, raw))
        reports = getattr(self.pipeline, "reports", None)
        # (a message judged with no command: its parts may have been made a report by its late part since)
        marked = {m[2] for m in (max(k["markers"]) for k in keys.values() if k["markers"]) if not m[4]}
        ask = [(pid, min(x[2] for x in ps)) for k in keys.values() for pid, ps in k["parts"].items()
               if pid not in marked]
        found = set()
        if reports is not None and ask:
            # a report line is appended after every part it was put together from was journalled
            found = reports.parts_recorded({pid for pid, _ in ask}, min(r for _, r in ask))
        done = back = judged_back = 0
        for key, k in keys.items():
            markers = sorted(k["markers"])
            for old in markers[:-1]:
                rl.gone(old[1])            # (older messages of this key)
            marker = markers[-1] if markers else None
            dead = {pid for pid in k["parts"] if pid in found or (marker and pid == marker[2] and not marker[4])}
            judged = marker[2] if marker and marker[4] and marker[2] not in dead else None
            rest = [x for pid, ps in k["parts"].items() if pid not in dead and pid != judged for x in ps]
            reported = sorted(pid for pid in dead if pid in found)
            if reported and (marker is None or marker[2] not in reported or marker[4]):
                # a report line says it is done (written after any marker this key has: it is the newest message):
                # marked so now, first, then its parts' records go
                pid = reported[0]
                digests = {n: _digest(n, part[_TEXT]) for n, part, *_ in k["parts"][pid]}
                if marker is not None:
                    rl.gone(marker[1])
                marker = (wall, rl.add(_owner(key, 0, pid, 0, wall), _digests_raw(digests), rl.report), pid, digests,
                          False)
            for pid in dead:
                self._mo_records_gone([part for _, part, *_ in k["parts"][pid]])
            kept = [part for _, part, *_ in k["parts"].get(judged, ())]
            if marker is not None and (rest or (marker[4] and not kept)):
                # a newer message has this key: it is the one waiting (or the parts judged with no command have gone:
                # a late part made it a command, done since)
                rl.gone(marker[1])
                self._mo_records_gone(kept)
                marker = None
            if marker is not None and marker[4]:
                judged_back += self._mo_remember_no_command(key, marker, kept, wall)
                continue
            if marker is not None:
                # done before the crash: remembered as recorded (its completing part, delivered again if its answer
                # was lost, is acknowledged), and marked so on disk (a second crash), until NOT_RECORDED_KEEP after
                # it was first marked done
                self._mo_remember_done(key, marker, wall)
                done += 1
                continue
            if not rest:
                continue
            # waiting for the rest: until NOT_RECORDED_KEEP after its first part came (the SMSC's retries), not
            # from each start -- and never longer (a first part "ahead" of the clock, after a step back of the
            # wall clock between the runs, waited as long as the step more: a day back, 25 h; found by the
            # clock-step probe), as a done marker (_mo_remember_done)
            first = min(x[3] for x in rest)
            delay = max(self.settings.concat_timeout, min(NOT_RECORDED_KEEP, first + NOT_RECORDED_KEEP - wall))
            pid = min(part[_PID] for _, part, *_ in rest)
            for n, part, roff, at, raw in rest:
                if part[_PID] != pid:
                    # (a stop's set-aside, then a part that came during the drain: one message, one id, on disk
                    # too, so that its report's line names every part of it)
                    hid = rl.add(_owner(key, n, pid, roff, at), raw, rl.report)      # (written before the old goes)
                    rl.gone(part[_HID])
                    part[_PID], part[_HID] = pid, hid
                old = self.mo_concat.add(key, key[4], n, part, self.settings.max_pending_concat,
                                         lambda k_, d=delay: self.loop.call_later(d, self._mo_due, k_))
                if old is not None:
                    self._mo_records_gone((old,))
                back += 1
        for key in [k for k in self.mo_concat.pending if self.mo_concat.complete(k)]:
            self.mo_concat.judge_now(key)           # (its last part came while the last run was stopping)
        if done:
            log.info("%d 5656 message(s) in parts were done before the last run ended: remembered, not judged again",
                     done)
        if judged_back:
            log.info("%d 5656 message(s) in parts judged with no command before the last run ended: remembered with "
                     "their parts for the late part", judged_back)
        if back:
            log.info("%d parts of 5656 messages acknowledged in the last run put back to wait for the rest", back)

    def _mo_origin_of_address(self, addr: tuple) -> tuple:
        """The origin (`mo_origin`) of a part journalled by a version before stop 57, whose key began with the
        address of the SMSC link it came on, (host, port): the origin of the SMSC configured at that address, else,
        with one id_space configured (one SMSC, whose port may have changed), that one's; else the address as it
        was (its parts join no new one). Read as written, a message whose parts straddled the upgrade was two."""
        s = self.settings
        spaces = {parse_addr(a): s.smsc_links.get(a, {}).get("id_space", "") for a in s.smsc}
        if addr in spaces:
            return ("smsc", spaces[addr])
        return ("smsc", next(iter(self.id_spaces()))) if len(self.id_spaces()) == 1 else addr

    def _mo_remember_done(self, key, marker, wall: float) -> None:
        until = self._mo_marker_until(marker, wall)
        if until is None:
            return
        self.mo_concat.settled(key, RECORDED, until, self.settings.max_pending_concat)
        self._mo_done_digests[key] = marker[3]

    def _mo_remember_no_command(self, key, marker, parts, wall: float) -> int:
        """A message judged with no command before the restart: remembered so with its parts (its late part has
        the whole text judged, mo.py) and their records kept, until NOT_RECORDED_KEEP after it was judged."""
        until = self._mo_marker_until(marker, wall)
        if until is None:
            self._mo_records_gone(parts)
            return 0
        c = Pending(key[4])
        c.parts = {pdu_concat(p[_PDU])[2]: p for p in parts}
        self.mo_concat.remember(key, JUDGED_NO_COMMAND, until, c, self.settings.max_pending_concat)
        self._mo_keep_unwritten(key, parts)
        return 1

    def _mo_marker_until(self, marker, wall: float) -> float | None:
        """(loop time) Until when a restored marker lives: NOT_RECORDED_KEEP after it was written (kept so on
        disk); None when that has passed (it goes now)."""
        at, hid = marker[:2]
        now = self.loop.time()
        until = now + min(NOT_RECORDED_KEEP, at + NOT_RECORDED_KEEP - wall)
        if until <= now:
            self.mo_log.gone(hid)
            return None
        self._mo_marked(hid, until)
        return until

    def mo_same_message(self, key, n: int, text: str) -> bool:
        """A part coming for a message remembered as done at start: True when it is one of its parts (its
        digest, or a part number it had none for: the completing one). False: a new message reusing the key
        (the sender's reference number wrapped); its memory is forgotten and the part taken as new."""
        d = self._mo_done_digests.get(key) if self._mo_done_digests is not None else None
        if d is None or n not in d or d[n] == _digest(n, text):
            return True
        self._mo_done_digests.pop(key, None)
        self.mo_concat.forget(key)
        return False


def made_no_command(v) -> bool:
    """A short-code message's verdict that put nothing in force: what had arrived of its text was no command (its
    late parts have the whole text judged: mo.py, engine/state/mo_parts.py)."""
    return v is not RECORDED and bool(v.hits) and v.hits[0].symbol == "SHORTCODE_SYNTAX_ERROR"


def _owner(key, n: int, pid: str, reports_at: int, at: float) -> str:
    """A record's fields beside its PDU: its message's key, its part number (0: the message's done marker,
    whose payload is its parts' digests), the message's parts_id, where reports.jsonl ended when the part was
    journalled, and when the record was written (epoch seconds)."""
    return json.dumps([key[0], key[1], key[2], key[3], key[4], n, pid, reports_at, at])


def _digest(n: int, text: str) -> bytes:
    return hashlib.blake2b(f"{n}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _digests_raw(d: dict, no_command: bool = False) -> bytes:
    """A marker's payload: its parts' digests; led by NO_COMMAND for a message judged whose parts made none."""
    return (NO_COMMAND if no_command else b"") + b"".join(bytes((n,)) + dg for n, dg in sorted(d.items()))


def _digests_of(raw: bytes) -> dict:
    if len(raw) % 9:
        raise ValueError("a done marker's digests are not whole")
    return {raw[i]: bytes(raw[i + 1:i + 9]) for i in range(0, len(raw), 9)}
