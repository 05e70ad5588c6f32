"""`telfilter verdicts`: the verdict-log lines of one subscriber, sender or symbol, for the care desk.

    telfilter verdicts --log verdicts.log* --number 0912345678 [--from 2026-12-01] [--to 2026-12-07]

A subscriber's complaint names a number as they write it (0912 345 678) while the log keeps each address as the
ESME or caller wrote it (0912345678, 84912345678, +84912345678): a number matches every way of writing it, each read
as the registry reads it (`numbers.sender_key`; an address whose SMPP type of number read it otherwise, its
`*_read` member, by that reading). A brandname matches case- and blank-insensitively. The lines read the way
`report` reads them (plain, .gz, .bz2, .xz, '-' = stdin; a malformed line said and skipped) and are printed as
JSON lines, in time order across the logs (each log's lines in its own order), each with `ts_local`: its time in the
[engine] timezone, the one subscribers give.
Exit status as grep's: 0 when a line matched, 1 when none did, 2 on a usage error.

A forwarded SMS's line shows the message_ids the SMSC gave it (`message_ids`, from the `sms_id` lines written at its
submit_sm_resp: report/msgid_join.py), and `--message-id` finds the line of an id from the SMSC's CDRs or a delivery
receipt: a first pass finds its `sms_id` lines and the line each names (its account, sender, recipient and time,
`"judged"`: exactly, no guess), a second prints those lines (files, not '-'). A list
change made on a running serve (`ctl lists`, a `list` line: who, when, what) matches `--number` as its number does,
and so does one made offline (`telfilter lists`: the same line in DATA/lists/changes.jsonl, given as a --log; an
import's line names a file, no number: --number never shows it).
"""
from __future__ import annotations

import json
import os
import stat
import sys

from ..cli_types import date_order_error, day
from ..jsontext import surrogates_escaped
from ..numbers import normalise_number, sender_key
from .msgid_join import IdJoin, forwarded, id_key, line_key
from .logfiles import distinct_logs
from .reader import ACTIONS, Malformed, read_verdicts

# the members of a verdict line that hold an address (sms, cancel, sms_id: sender, recipient; call, call_unsent:
# caller, callee; list: a DNC change's number)
ADDRESSES = ("sender", "recipient", "caller", "callee", "number")
MAX_IDS = 100           # lines found by --message-id in the first pass (an SMSC may reuse an id; a part's id)


def add_parser(subs, sub) -> None:
    p = sub(subs, "verdicts", "the verdict-log lines of a number, sender, symbol or action (a complaint's lines), "
            "as JSON lines with their local time")
    p.add_argument("--log", nargs="+", action="extend", required=True, metavar="FILE",
                   help="verdict logs (plain, .gz, .bz2, .xz; rotated ones too; '-' = stdin), read merged by time; "
                   "DATA_DIR/lists/changes.jsonl too: the offline `lists` changes")
    p.add_argument("--number", action="append", default=[], metavar="N",
                   help="a subscriber's number as written anywhere (0912345678, +84 912 345 678, 84912345678): the "
                   "lines where it is the sender, recipient, caller or callee (repeatable: any of them)")
    p.add_argument("--sender", action="append", default=[], metavar="NAME",
                   help="a brandname or sender (case and blanks ignored; repeatable)")
    p.add_argument("--symbol", action="append", default=[], metavar="SYM",
                   help="lines with a hit of this symbol (ML_SPAM, AD_TO_DNC …; repeatable: any of them)")
    p.add_argument("--action", action="append", default=[], choices=ACTIONS,
                   help="lines with this action (repeatable)")
    p.add_argument("--message-id", action="append", default=[], metavar="ID",
                   help="the SMSC's message_id (its CDRs, a delivery receipt): the line of the message it was given "
                   "to (repeatable: any of them; reads the logs twice, so files, not '-')")
    p.add_argument("--from", dest="date_from", type=day, metavar="DATE",
                   help="first day (YYYY-MM-DD in the [engine] timezone of --config), inclusive")
    p.add_argument("--to", dest="date_to", type=day, metavar="DATE",
                   help="last day (YYYY-MM-DD, [engine] timezone), inclusive")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _address_key(rec: dict, field: str):
    read = rec.get(field + "_read")
    if isinstance(read, str):
        n = normalise_number(read)
        if n is not None:
            return n
    v = rec.get(field)
    return sender_key(v) if isinstance(v, str) else None


def matcher(numbers, senders, symbols, actions):
    """A test of one verdict record: every filter given holds (each filter: any of its values)."""
    keys = set()
    for raw in numbers:
        n = normalise_number("".join(raw.split()))
        if n is None:
            raise ValueError(f"--number {raw!r} is not a phone number or short code")
        keys.add(n)
    names = {sender_key(s) for s in senders}
    symbols, actions = set(symbols), set(actions)

    def test(rec: dict) -> bool:
        if actions and rec.get("action") not in actions:
            return False
        if symbols and not any(isinstance(h, dict) and h.get("symbol") in symbols for h in rec.get("hits") or ()):
            return False
        if keys and not any(_address_key(rec, f) in keys for f in ADDRESSES):
            return False
        return not names or _address_key(rec, "sender") in names or _address_key(rec, "caller") in names
    return test


def _id_keys(paths, ids) -> tuple[set, bool]:
    """--message-id's first pass: the keys of the lines (msgid_join.line_key) the sms_id lines of `ids` name, at
    most MAX_IDS of them; and whether more were left out."""
    keys: set = set()
    over = False
    for ts, rec in read_verdicts(paths, Malformed(), progress=False):   # (its malformed lines said once, in pass 2)
        if rec.get("kind") == "sms_id" and rec.get("message_id") in ids:
            k = id_key(rec)
            if len(keys) < MAX_IDS:
                keys.add(k)             # (None: one naming no line, printed as itself)
            elif k not in keys:
                over = True
    return keys, over


def _by_message_id(records, ids: set, keys: set, shown):
    """--message-id's second pass: the lines of `keys` that `shown(ts, rec)` lets through, each with the ids of every
    sms_id line naming it (wherever they are in the logs: a rotated log read after a newer one too), and the sms_id
    lines of `ids` whose line was not read, in file order. At most the lines of MAX_IDS keys and their ids."""
    held, ids_of, found = [], {}, set()
    alone = 0                   # sms_id lines held to be printed by themselves if their line is not read
    for ts, rec in records:
        kind = rec.get("kind")
        if kind == "sms" and forwarded(rec):
            k = line_key(ts, rec)
            if k in keys:
                found.add(k)
                if shown(ts, rec):
                    held.append((ts, rec, k))
        elif kind == "sms_id":
            k = id_key(rec)
            if k in keys:
                if k is not None:
                    ids_of.setdefault(k, []).append(rec.get("message_id"))
                if rec.get("message_id") in ids and alone < MAX_IDS and shown(ts, rec):
                    alone += 1
                    held.append((ts, rec, None if k is None else ("id", k)))
    for ts, rec, k in held:
        if rec.get("kind") == "sms":
            rec["message_ids"] = ids_of.get(k, [])
            yield ts, rec
        elif k is None or k[1] not in found:       # its line not read: the id by itself
            yield ts, rec


def _pipe(p) -> bool:
    """A FIFO, `<(…)` or another stream read once (a directory, a missing file: said when read, not 'a pipe')."""
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def cmd_verdicts(args) -> int:
    from ..config import load_settings
    if why := date_order_error(args.date_from, args.date_to):
        print(f"telfilter verdicts: error: {why}", file=sys.stderr)
        return 2
    if args.message_id and "-" in args.log:
        print("telfilter verdicts: error: --message-id reads the logs twice: name the files, not '-'", file=sys.stderr)
        return 2
    try:
        test = matcher(args.number, args.sender, args.symbol, args.action)
    except ValueError as e:
        print(f"telfilter verdicts: error: {e}", file=sys.stderr)
        return 2
    tz = load_settings(getattr(args, "config", None)).tz
    read, repeated = distinct_logs(args.log)
    if args.message_id and (piped := [p for p in read if _pipe(p)]):
        # (a FIFO or `<(xzcat …)`: the first pass empties it, and the second's open waits for a writer for ever)
        print(f"telfilter verdicts: error: --message-id reads the logs twice: {piped[0]} is a pipe, read once; name "
              f"the files", file=sys.stderr)
        return 2
    for line in repeated:
        print(f"telfilter verdicts: warning: log named twice, read once: {line}", file=sys.stderr)
    bad = Malformed()
    ids = set(args.message_id)
    out = sys.stdout

    def shown(ts, rec) -> bool:
        day = ts.astimezone(tz).date()
        return not (args.date_from and day < args.date_from) and not (args.date_to and day > args.date_to) \
            and test(rec)

    def printed(pairs) -> int:
        n = 0
        for ts, rec in pairs:
            n += 1
            # (a peer's undecodable byte, logged as a "\\udcff" escape, read back as a lone surrogate: escaped
            # again, the output stays UTF-8)
            out.write(surrogates_escaped(json.dumps({**rec, "ts_local": ts.astimezone(tz).isoformat()},
                                                    ensure_ascii=False)) + "\n")
        return n

    seen = found = 0

    def counted(records):
        nonlocal seen
        for pair in records:
            seen += 1
            yield pair
    records = counted(read_verdicts(read, bad, progress=not args.no_progress and sys.stderr.isatty(), merged=True))
    if ids:
        keys, over = _id_keys(read, ids)
        if over:
            print(f"telfilter verdicts: warning: the ids given name more than {MAX_IDS} lines: the first {MAX_IDS} "
                  f"shown", file=sys.stderr)
        found = printed(_by_message_id(records, ids, keys, shown))
    else:
        join = IdJoin()
        for ts, rec in records:
            found += printed(join.ready(ts))
            if rec.get("kind") == "sms_id":
                if not join.sms_id(rec) and shown(ts, rec):
                    join.orphan(ts, rec)        # its line not read (or let go): the id by itself
                continue
            join.add(ts, rec, shown(ts, rec))
        found += printed(join.rest())
    for line in bad.shown:
        print(f"telfilter verdicts: malformed line skipped: {line}", file=sys.stderr)
    if bad.count > len(bad.shown):
        print(f"telfilter verdicts: ... and {bad.count - len(bad.shown)} more malformed lines", file=sys.stderr)
    print(f"telfilter verdicts: {found:,} of {seen:,} lines matched", file=sys.stderr)
    return 0 if found else 1
