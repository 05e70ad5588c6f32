"""The verdict log: one JSON line per judged message or call.

Logging never decides the fate of a message or call: `write*` never raise. A field that
cannot be encoded as UTF-8 (a lone surrogate from a peer's undecodable bytes) is written as
a JSON `\\uXXXX` escape; a write that fails (disk full, closed file) is counted in
`errors`, reported in the service log at most every ERROR_LOG_S, and the message or call
goes on as its verdict says.
"""
from __future__ import annotations

import json
import math
import os
from json.encoder import encode_basestring as _jstr      # the C string encoder json.dumps uses

from .numbers import format_number, read_by_ton
from .stamps import second_key
from .verdict import Action
from .jsontext import number_text as _num, score_text as _score_json
from .verdictsink import VerdictSink

_ACTION_NAME = {a: str(a) for a in Action}
_STAMP = [None, "", ""]        # (the second it is for, "YYYY-MM-DDTHH:MM:SS", the UTC offset part)
_SCORES: dict = {}             # a nonzero score (a float under 1e11) -> _score_json's text of it
_MAX_SCORES = 4096
_copysign = math.copysign


def _read_by_ton(msg) -> str:
    """The JSON members naming an address its SMPP type of number read otherwise than its digits alone would
    (`"recipient_read": "+2439998888", "recipient_ton": 1`: a number sent as international, not the Vietnamese
    landline 2439998888 reads as without it), "" when neither was (every line of a check --jsonl replay reads so)."""
    out = ""
    n = read_by_ton(msg.sender, msg.sender_ton)
    if n is not None:
        out = ', "sender_read": "%s", "sender_ton": %d' % (format_number(n), msg.sender_ton)
    n = read_by_ton(msg.recipient, msg.recipient_ton)
    if n is not None:
        out += ', "recipient_read": "%s", "recipient_ton": %d' % (format_number(n), msg.recipient_ton)
    return out


def _isoformat(t) -> str:
    """t.isoformat(), with the part down to the second (and the offset) made once per second:
    messages come many to a second, and an aware datetime's isoformat() costs more than the rest
    of the line's fields together."""
    key = second_key(t)
    st = _STAMP
    if key != st[0]:
        whole = t.replace(microsecond=0).isoformat()
        st[0], st[1], st[2] = key, whole[:19], whole[19:]       # the date and time are 19 characters
    us = t.microsecond
    return st[1] + ".%06d" % us + st[2] if us else st[1] + st[2]


_NAMES: dict[str, str] = {}
_MAX_NAMES = 4096


def _name_json(name: str) -> str:
    """JSON of a PDU or account name, kept (bounded: a name past the bound is encoded each time)."""
    j = _NAMES.get(name)
    if j is None:
        j = _jstr(name)
        if len(_NAMES) < _MAX_NAMES and type(name) is str:
            _NAMES[name] = j
    return j


def _call_line(when, call_id, caller, callee, ingress, action, score, hits, judge_us) -> str:
    """A judged call's line (`action` its name, `hits` their JSON): the text `write()` gives for its record."""
    return ('{"ts": "%s", "kind": "call", "call_id": %s, "caller": %s, "callee": %s, "ingress": %s, '
            '"action": "%s", "score": %s, "hits": %s, "judge_us": %s}'
            # isoformat() is plain ASCII with nothing to escape, its part down to the second made once
            % (_isoformat(when), "null" if call_id is None else _jstr(call_id), _jstr(caller), _jstr(callee),
               _jstr(ingress), action,
               # (write_sms's "%.4f" form of float.__repr__(round(score, 4)), character for character)
               _score_json(score) if type(score) is float and -1e11 < score < 1e11 else _num(round(score, 4)),
               hits,
               # (write()'s "%.1f" for round(judge_us, 1), character for character: a quarter of the cost)
               "%.1f" % judge_us if type(judge_us) is float and -1e15 < judge_us < 1e15
               else _num(round(judge_us, 1))))


# the same line from C in its common case (a UTC time, ASCII text, float score and time; None otherwise): ~14,000
# instructions less an INVITE (engine/_callline.h; TELFILTER_STAMPS_PURE=1: the Python form only, as stamps.py)
_c_call_line = None
if os.environ.get("TELFILTER_STAMPS_PURE") != "1":
    try:
        from ._stamps import call_line as _c_call_line
    except ImportError:
        pass

# an SMS's line likewise (engine/_smsline.h): ~13,000 instructions less a submit_sm
_c_sms_line = None
if os.environ.get("TELFILTER_STAMPS_PURE") != "1":
    try:
        from ._stamps import sms_line as _c_sms_line
    except ImportError:
        pass

_HITS: dict = {}
_MAX_HITS = 4096


def _hit_json(h) -> str:
    """A hit's JSON, kept: most hits repeat (a symbol with the same detail, e.g. one sender
    not in the registry). Bounded by emptying the cache when it is full (O(1) amortised; a
    detail that is new every time costs one look-up more). The score's type is in the key:
    15 and 15.0 are equal keys but print differently."""
    sc = h.score
    key = (h.symbol, sc, type(sc), h.detail, h.source)
    j = _HITS.get(key)
    if j is None:
        j = _hit_json_text(h)
        if len(_HITS) >= _MAX_HITS:
            _HITS.clear()
        _HITS[key] = j
    return j


def _hit_json_text(h) -> str:
    sc = round(h.score, 6)
    return '{"symbol": %s, "score": %s, "detail": %s, "source": %s}' % (
        _name_json(h.symbol), float.__repr__(sc) if type(sc) is float else _num(sc), _jstr(h.detail),
        _name_json(h.source))


def _hits_json(hits) -> str:
    # the text Hit.to_json() gives under json.dumps, built without the intermediate dicts
    # (symbols and sources are few: their JSON is kept, as names are)
    if len(hits) == 1:
        return "[" + _hit_json(hits[0]) + "]"
    return "[" + ", ".join([_hit_json(h) for h in hits]) + "]"


def _sms_line(msg, pdu, v, judge_us, binary, reading, status, late, concat, redelivery, mo, sub, read) -> str:
    """An SMS verdict's line (VerdictLog.write_sms's arguments; `sub`: msg.submitted, `read`: _read_by_ton's members or
    ""): the text `write()` gives for its record. The reference form, and every line outside engine/_smsline.h's
    common case."""
    score, hits, r, s = v.score, v.hits, msg.recipient, msg.sender
    # _isoformat and _score_json inline, the fields into one f-string (no "%" of ten fields to parse, no
    # joins in between): ~3,000 instructions less a line (tests/test_verdictlog_sms_line.py: write()'s text)
    t = msg.time if sub is None else sub
    key, st = second_key(t), _STAMP
    if key != st[0]:
        whole = t.replace(microsecond=0).isoformat()
        st[0], st[1], st[2] = key, whole[:19], whole[19:]       # the date and time are 19 characters
    us = t.microsecond
    if type(score) is float and -1e11 < score < 1e11:
        # kept by value (_SCORES): a score is a sum of the rules' fixed scores, a few values over and over
        # (0.0 for most lines: told from -0.0 by its sign, the one pair of equal floats printed apart)
        sc = _SCORES.get(score) if score else "0.0" if _copysign(1.0, score) > 0.0 else "-0.0"
        if sc is None:
            sc = ("%.4f" % score).rstrip("0")
            if sc[-1] == ".":
                sc += "0"
            if len(_SCORES) >= _MAX_SCORES:      # bounded (a classifier's hit makes a new one each time)
                _SCORES.clear()
            _SCORES[score] = sc
    else:
        sc = _num(round(score, 4))
    # names of PDUs and accounts are few and their JSON is kept (read here: _name_json's frame only the
    # first time); "%.1f" is float.__repr__(round(judge_us, 1)), character for character, below 1e15 (both
    # round the exact binary value half to even; repr turns to exponents at 1e16 only), at a quarter of
    # the cost: round(x, n) formats through PyOS_snprintf (~2,300 instructions)
    pj = _NAMES.get(pdu) or _name_json(pdu)
    aj = _NAMES.get(msg.account) or _name_json(msg.account)
    ju = "%.1f" % judge_us if type(judge_us) is float and -1e15 < judge_us < 1e15 else _num(round(judge_us, 1))
    extra = ((', "binary": true' if binary else "") + (', "reading": %s' % _jstr(reading) if reading else "")
             + (', "delivery": "%s"' % msg.time.isoformat() if sub is not None else "")
             + (', "status": %d' % status if status is not None else "")
             + (', "late": true' if late else "") + (', "concat": %s' % _jstr(concat) if concat else "")
             + (', "mo_digest": "%s"' % mo + (', "redelivery": true' if redelivery else "") if mo else "")
             if binary or reading or sub is not None or status is not None or late or concat or mo else "")
    # (isoformat() is plain ASCII with nothing to escape)
    return (f'{{"ts": "{st[1]}{".%06d" % us if us else ""}{st[2]}", "kind": "sms", "pdu": {pj}, '
            f'"account": {aj}, "sender": {_jstr(s)}, "recipient": {_jstr(r)}, '
            f'"action": "{_ACTION_NAME[v.action]}", "score": {sc}, "hits": {_hits_json(hits) if hits else "[]"}, '
            f'"judge_us": {ju}{extra}{read}}}')


class VerdictLog(VerdictSink):
    """One JSON line per verdict (stdout or a file), and optionally the same records as an
    event stream for other processes: a ZeroMQ PUB socket (topic `verdict`); where they go: verdictsink.py."""

    # ------------------------------------------------------------ records
    def write(self, rec: dict) -> None:
        try:
            line = json.dumps(rec, ensure_ascii=False)
        except (TypeError, ValueError) as e:          # a bug upstream; the message still goes on
            return self._failed(e)
        self._emit(line)

    def write_sms(self, msg, pdu: str, v, judge_us: float, binary: bool = False, reading: str | None = None,
                  status: int | None = None, late: bool = False, concat: str | None = None,
                  redelivery: bool = False, mo: str = "") -> None:
        """The line `write()` gives for an SMS verdict record, built directly (this is on the
        per-message path). `reading` names how data_coding 0/1 bytes were read when that is not
        the literal reading (e.g. "gsm" for GSM 03.38 bytes sent under data_coding 1). `status`: the
        command_status the SMSC was answered when the verdict did not say it (an MO no ESME could take).
        `late`: a part of a concatenated message that came after its message was judged (and logged): the
        line says `"late": true`, and readers that count messages (the regulator's report) count its message
        by its own line. `concat`: the identity of a concatenated message that may have late parts
        (concat.concat_id), on its line and on its late parts' (`"concat": "…"`): how a reader ties them.
        `redelivery`: a 5656 command the SMSC delivered again, applied by its first delivery's line and not again
        (smpp_proxy/mo_redelivery.py): the line says `"redelivery": true`, and the regulator's report counts it no
        second time. `mo`: the digest of a 5656 command's MO (16 hex digits; a copy's line needs it to say
        `redelivery`), `"mo_digest"` on its line: the report ties a copy to its first delivery's line by it, and counts
        a copy whose first line it never read (serve killed before writing it) as the message."""
        try:
            # a scheduled message: "ts" is when it was submitted (and judged), "delivery" the time it was judged at
            sub = msg.submitted
            # an address its SMPP type of number (international, national) read otherwise than its digits alone
            # would; tested inline: most lines have none that could be (an alphanumeric sender, TON 5, and the
            # bare 11 digits 84912345678, read alike either way)
            r, s = msg.recipient, msg.sender
            read = _read_by_ton(msg) if 0 < msg.recipient_ton < 3 and (len(r) < 11 or not r.isdigit()) or \
                0 < msg.sender_ton < 3 and (len(s) < 11 or not s.isdigit()) else ""
            line = None
            if _c_sms_line is not None and sub is None and not (read or binary or reading or status is not None
                                                                 or late or concat or mo):
                # the common line from C (None outside its common case: a non-ASCII address, another zone)
                hits = v.hits
                line = _c_sms_line(msg.time, pdu, msg.account, s, r, _ACTION_NAME[v.action], v.score,
                                   _hits_json(hits) if hits else "[]", judge_us)
            if line is None:
                line = _sms_line(msg, pdu, v, judge_us, binary, reading, status, late, concat, redelivery, mo, sub,
                                 read)
        except Exception as e:
            return self._failed(e)
        self._emit(line)

    def write_call(self, when, call_id, caller: str, callee: str, ingress: str, v, judge_us: float) -> None:
        """The line `write()` gives for a call verdict record (SIP screen), built directly."""
        try:
            hits = v.hits
            action, score, hj = _ACTION_NAME[v.action], v.score, _hits_json(hits) if hits else "[]"
            line = None if _c_call_line is None else \
                _c_call_line(when, call_id, caller, callee, ingress, action, score, hj, judge_us)
            if line is None:
                line = _call_line(when, call_id, caller, callee, ingress, action, score, hj, judge_us)
        except Exception as e:
            return self._failed(e)
        self._emit(line)

    def write_call_refusal(self, when, call_id, caller: str, callee: str, ingress: str, status: int,
                           reason: str) -> None:
        """A call answered with an error without a verdict (SIP screen: one it answered itself, unjudged: a new call
        while serve drains, too many waiting for a verdict, a request the §16.3 checks or the parser refused). The
        line `write()` gives, built directly: a flood of malformed INVITEs writes one each."""
        try:
            line = ('{"ts": "%s", "kind": "call", "call_id": %s, "caller": %s, "callee": %s, "ingress": %s, '
                    '"action": "refuse", "status": %s, "reason": %s}'
                    % (_isoformat(when), "null" if call_id is None else _jstr(call_id), _jstr(caller), _jstr(callee),
                       _jstr(ingress), int.__repr__(int(status)), _jstr(reason)))
        except Exception as e:
            return self._failed(e)
        self._emit(line)

    def write_call_unsent(self, when, call_id, caller: str, callee: str, ingress: str, judged, status: int,
                          reason: str) -> None:
        """A call judged and let through (its line written, `allow` or `tag`, at `judged`) that never left: the SIP
        screen answered it itself, `status` for `reason` (503: its forward failed; 487: cancelled while judged),
        its counts given back. `telfilter report` ties it to the call's line by Call-ID and `judged` (that line's
        `ts`) and counts the call as refused, not among its caller's calls (report/unsent.py)."""
        try:
            line = ('{"ts": "%s", "kind": "call_unsent", "call_id": %s, "caller": %s, "callee": %s, "ingress": %s, '
                    '"judged": "%s", "status": %s, "reason": %s}'
                    % (_isoformat(when), "null" if call_id is None else _jstr(call_id), _jstr(caller), _jstr(callee),
                       _jstr(ingress), _isoformat(judged), int.__repr__(int(status)), _jstr(reason)))
        except Exception as e:
            return self._failed(e)
        self._emit(line)

    def write_refusal(self, when, pdu: str, account: str, sender: str, recipient: str, status: int,
                      reason: str, late: bool = False, concat: str | None = None, redelivery: bool = False,
                      mo: str = "") -> None:
        """A message answered with an error without a verdict (it could not be judged). `late`, `concat`,
        `redelivery`: as `write_sms`'s (a 5656 command put together from parts that the journal could not record;
        a copy of one still being written)."""
        rec = {"ts": when.isoformat(), "kind": "sms", "pdu": pdu, "account": account, "sender": sender,
               "recipient": recipient, "action": "refuse", "status": status, "reason": reason}
        if late:
            rec["late"] = True
        if concat:
            rec["concat"] = concat
        if mo:
            rec["mo_digest"] = mo
        if redelivery:
            rec["redelivery"] = True
        self.write(rec)

    def write_cancel(self, when, account: str, sender: str, recipient: str, message_id: str, delivery, status: int,
                     reason: str) -> None:
        """An ad scheduled ahead that the proxy asked the SMSC to cancel, its recipient having registered DK DNC
        before its delivery (smpp_proxy/dnc_cancel.py): `status` the SMSC's answer (0: cancelled)."""
        self.write({"ts": when.isoformat(), "kind": "cancel", "pdu": "cancel_sm", "account": account,
                    "sender": sender, "recipient": recipient, "message_id": message_id,
                    "delivery": delivery.isoformat(), "status": status, "reason": reason})

    def write_sms_id(self, when, account: str, sender: str, recipient: str, message_id: str, judged,
                     part: bool = False) -> None:
        """The SMSC's message_id of a forwarded SMS, at its submit_sm_resp ([upstream] log_message_ids): its message's
        line was written when judged, not held for it (a resp may never come). `judged`: that line's time (its
        `"ts"`), written as `"judged"`: with the account, sender and recipient it names the line exactly, as a
        call_unsent line names its call's (`telfilter verdicts` ties the two: report/msgid_join.py). `part`: a
        concatenated message's part (its late part's names the late part's own line). No verdict: metrics do not
        count it."""
        try:
            line = ('{"ts": "%s", "kind": "sms_id", "account": %s, "sender": %s, "recipient": %s, "message_id": %s, '
                    '"judged": "%s"%s}'
                    % (_isoformat(when), _NAMES.get(account) or _name_json(account), _jstr(sender), _jstr(recipient),
                       _jstr(message_id), _isoformat(judged), ', "part": true' if part else ""))
        except Exception as e:
            return self._failed(e)
        self._emit(line)

    def write_list_change(self, when, op: str, kind: str, value: str, by: str, number: str = "", detail: str = "",
                          found: bool = True) -> None:
        """A list changed on a running serve (`ctl lists`): lists/changes.py `list_change`'s record, the one an
        offline `telfilter lists` change is in lists/changes.jsonl, `by` "ctl uid N". (A subscriber's 5656 DK DNC /
        HUY DNC is its MO's own line.)"""
        from .lists.changes import list_change
        try:
            line = json.dumps(list_change(when, op, kind, value, by, number, detail, found), ensure_ascii=False)
        except (TypeError, ValueError, AttributeError) as e:
            return self._failed(e)
        self._emit(line)
