"""The audit record of an operator's list change: one shape, two places it is written.

A change made on a running serve (`ctl lists`) is a `"kind": "list"` line of the verdict log
(verdictlog.py `write_list_change`); one made offline on the host (`telfilter lists add|remove|import`) is
a line of `DATA_DIR/lists/changes.jsonl`, appended by the CLI under the lists' write lock right after the
change was saved (store.py `ListStore.modify`). Both are `list_change`'s record, so `telfilter verdicts
--log verdicts.jsonl --log DATA/lists/changes.jsonl --number N` shows both among the number's verdicts and
`telfilter report` counts both in `list_changes`. Example line:

    {"ts": "2026-12-07T09:12:03.120301+00:00", "kind": "list", "op": "add", "list": "dnc",
     "value": "0912 000 777", "number": "+84912000777", "detail": "channel S", "by": "cli uid 1001"}

`op` is add or remove (one entry; `"found": false`: a remove of what was not listed), import or replace (a
whole file, `--replace`: ONE line whatever its rows, `value` the file as named, `detail` its counts).

changes.jsonl grows with operator commands only (one line each, ~200 bytes), never with traffic; rotate it with
logrotate's `create` (each record is one O_APPEND write of a whole line, fsynced, and the next command opens the file
by name again), not `copytruncate`: logrotate takes no lock, and a line appended between its copy and its truncation
would be lost.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..durable import append_all, ends_in_newline, fsync_dir
from ..numbers import format_number, normalise_number
from .mlexempt import expired_left

FILE_NAME = "changes.jsonl"
OPS = ("add", "remove", "import", "replace")        # a record's `op` (report.py counts each by period and list)

_EXTRA_FIELDS = {"senders": ("owner", "category", "valid_from", "valid_to", "accounts"), "consent": ("owner",),
                 "mlexempt": ("valid_to", "note")}


def list_change(when, op: str, kind: str, value: str, by: str, number: str = "", detail: str = "",
                found: bool = True) -> dict:
    """The audit record of a list change (no I/O): `number` the value's E.164 form when it is one (`verdicts
    --number` finds it), `detail` as the service log's audit line says it, `by` who ("ctl uid N", "cli uid N");
    `found` false: a remove of what was not listed."""
    return {"ts": when.isoformat(), "kind": "list", "op": op, "list": kind, "value": value,
            **({"number": number} if number else {}), **({"detail": detail} if detail else {}), "by": by,
            **({} if found else {"found": False})}


def record_of(kind: str, op: str, value: str, detail: str, found: bool, by: str) -> dict:
    """`list_change`'s record of a change made now, its `number` found from its value for an add or remove."""
    from ..stamps import utc_now
    return list_change(utc_now(), op, kind, value, by, number_of(kind, value) if op in ("add", "remove") else "",
                       detail, found)


def fields(kind: str, channel, extra) -> str:
    """An audit line's fields of a list change beyond its value: the DNC channel, the senders / consent fields given
    (`remove senders X --category QC` takes that registration only, not every one of X: the line must say which)."""
    if kind == "dnc":
        return f" channel {channel or 'SV'}"
    given = zip(_EXTRA_FIELDS.get(kind, ()), extra or ())
    return "".join(f" {k} {v.strip()!r}" if " " in v.strip() else f" {k} {v.strip()}" for k, v in given if v.strip())


def edit_detail(kind: str, channel, extra, left: int = 0) -> str:
    """An add's or remove's `detail`: its fields, and the mlexempt rows past their valid_to that left with it."""
    return (fields(kind, channel, extra) + (f" ({expired_left(left)})" if left else "")).strip()


def import_detail(kind: str, imported: int, bad: int, left: int = 0, sha256: str = "") -> str:
    """An import's `detail`: the file's good rows, its bad rows, for mlexempt the rows past their valid_to that left
    the list with it, and the SHA-256 of the bytes imported (which file, whatever its name)."""
    return f"imported {imported} bad_rows {bad}" + (f" expired_left {left}" if kind == "mlexempt" else "") \
        + (f" sha256 {sha256}" if sha256 else "")


def number_of(kind: str, value: str) -> str:
    """The number a list change names, as +E164, or "": a DNC, consent or mlexempt value, a blacklist value of kind
    number (not an address: `192.0.2.7` is no number 192027), never a sender."""
    if kind == "senders":
        return ""
    if kind == "blacklist":
        from .edits import record
        try:
            k, n = record("blacklist", value, "SV", None)
        except ValueError:          # (taken already by the change itself)
            return ""
        return format_number(n) if k == "number" else ""
    n = normalise_number(value)
    return format_number(n) if n else ""


def append_change(path: Path, rec: dict) -> None:
    """Append `rec` as one line of `path`, durably: one O_APPEND write, fsynced (durable.append_all: cut back on a
    failure), the file's directory entry fsynced when this made it. Created as the DNC journal is (0644 less the
    umask): it names nothing the lists themselves do not. A last line a crash cut short is ended first, so this
    record is a whole line. Raises OSError (the caller says it: the change it records stands)."""
    line = _line(rec)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if not ends_in_newline(fd):
            line = b"\n" + line
        append_all(fd, line)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


# --- a record's write-ahead: a writer killed between its save and its record (kill -9, the OOM killer, a power cut)
# left the change in force with no record. Before the save, the record and the snapshot it replaces (device and
# inode: a save renames a new file in, so a new inode; the old one stays linked as .prev meanwhile) are written to
# lists/changes.pending; the next writer under the write lock (any: `lists`, serve's journal compaction) finds it
# and appends the record when the snapshot it names was replaced, drops it when it was not (killed before the save).
PENDING_NAME = "changes.pending"


def _inode(path: Path) -> list | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino]


def write_intent(pending: Path, rec: dict, snapshot: Path) -> None:
    """Before a change is saved (under the write lock): its record and the snapshot it will replace, durably. Raises
    OSError: the change is not saved (it could be left unrecorded)."""
    from ..durable import replace_file
    data = json.dumps({"record": rec, "snapshot": snapshot.name, "before": _inode(snapshot)}, ensure_ascii=False)
    replace_file(pending, data.encode("utf-8", "backslashreplace"))


def drop_intent(pending: Path) -> None:
    """The record is written (or the change was not saved): its write-ahead goes."""
    try:
        pending.unlink()
    except FileNotFoundError:
        return
    fsync_dir(pending.parent)


def settle_intent(pending: Path, changes_path: Path) -> str | None:
    """A write-ahead a writer killed between its save and its record left (under the write lock, before any write):
    its record appended when the snapshot it names was replaced since (unless it is the last line already: killed
    after the record, before the write-ahead went), then the write-ahead removed. Returns what happened, for a
    warning (None: there was none). A write-ahead that cannot be read is kept aside as `.bad` and said. Raises
    OSError when the record cannot be appended (the write-ahead stays, for the next writer)."""
    from ..durable import remove_dead_writers_tmp
    remove_dead_writers_tmp(pending)
    try:
        raw = pending.read_bytes()
    except FileNotFoundError:
        return None
    try:
        got = json.loads(raw)
        rec, before = got["record"], got["before"]
        snapshot = pending.parent / got["snapshot"]
        if not isinstance(rec, dict) or Path(got["snapshot"]).name != got["snapshot"]:
            raise ValueError("not a write-ahead record")
    except (ValueError, KeyError, TypeError) as e:
        bad = pending.with_name(pending.name + ".bad")
        os.replace(pending, bad)
        fsync_dir(pending.parent)
        return f"{pending}: unreadable ({e}); kept as {bad}: a change saved by a writer killed before its audit " \
               f"record may have none"
    if _inode(snapshot) == before:
        drop_intent(pending)
        return f"{pending}: a change of the {rec.get('list')} list was not saved (its writer stopped before): no record"
    if not _last_line_is(changes_path, _line(rec)):
        append_change(changes_path, rec)
    drop_intent(pending)
    return f"{changes_path}: recorded a change of the {rec.get('list')} list saved at {rec.get('ts')} by a writer " \
           f"stopped before its record ({rec.get('by')})"


def settle_before_write(pending: Path, changes_path: Path, audited: bool) -> str | None:
    """`settle_intent` before a write; a record that cannot be appended is said (a fold, a plain save) or, before an
    audited change, whose write-ahead would take its place, raised as an OSError: that change is not saved."""
    try:
        return settle_intent(pending, changes_path)
    except OSError as e:
        if audited:
            raise OSError(e.errno, f"an earlier change's audit record, kept in {pending}, cannot be written to "
                                   f"{changes_path} ({e.strerror or e}): no change is saved until it is",
                          e.filename) from None
        return f"{pending}: an earlier change's audit record cannot be written yet: {e.strerror or e}"


def _line(rec: dict) -> bytes:
    """A record as the line of changes.jsonl that holds it."""
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def _last_line_is(path: Path, line: bytes) -> bool:
    """Whether `line` is the file's last line, whole (the file is it, or a newline ends what comes before it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(size - len(line) - 1, 0))
            tail = f.read()
    except FileNotFoundError:
        return False
    return tail == line or tail == b"\n" + line
