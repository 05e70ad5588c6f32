"""The `lists` command of the control interface (engine/control.py): one writer for an operator's list change on a
running serve, and its audit record.

A DNC change goes the way of a 5656 command (journalled durably, then in force); other kinds go the way of the CLI
(ListStore read-modify-write in a worker thread, then a lists reload). Each change made is said in the service log
(at any -v level) and is a `"kind": "list"` line of the verdict log, by number and day (`telfilter verdicts`): the
record (lists/changes.py) an offline `telfilter lists` change leaves in DATA_DIR/lists/changes.jsonl.
"""
from __future__ import annotations

import asyncio

from .lists.changes import edit_detail, fields, number_of as _number_of
from .lists.csvio import KINDS
from .lists.mlexempt import expired_left
from .servicelog import life
from .stamps import utc_now


class ListCommands:
    """Mixin of ControlServer (pipe, vlog)."""

    async def audited_lists(self, req: dict, uid) -> dict:
        """`lists` from a peer of uid `uid`: the change, and its audit record when it was made."""
        ans = await self.lists(req)
        if ans.get("ok"):
            left = f" ({expired_left(ans['expired_left'])})" if ans.get("expired_left") else ""
            life.info("ctl lists %s %s %s%s by uid %s%s%s", ans["op"], ans["kind"], ans["value"],
                      fields(req["kind"], req.get("channel"), req.get("extra")),
                      uid, "" if ans.get("found", True) else " (was not listed)", left)
            if self.vlog is not None:       # (the record an offline `lists` change is in lists/changes.jsonl)
                self.vlog.write_list_change(utc_now(), ans["op"], ans["kind"], ans["value"], f"ctl uid {uid}",
                                            _number_of(ans["kind"], ans["value"]),
                                            edit_detail(req["kind"], req.get("channel"), req.get("extra"),
                                                        ans.get("expired_left", 0)),
                                            ans.get("found", True))
        return ans

    async def lists(self, req: dict) -> dict:
        from .lists import CsvError
        from .lists.edits import as_exported
        from .lists.edits import record as _record
        op, kind, value = req.get("op"), req.get("kind"), req.get("value")
        channel, extra = req.get("channel") or "SV", req.get("extra")
        if op not in ("add", "remove"):
            return {"ok": False, "error": f"lists op {op!r}: add or remove"}
        if kind not in KINDS:
            return {"ok": False, "error": f"lists kind {kind!r}: one of {', '.join(KINDS)}"}
        if not isinstance(value, str) or not isinstance(channel, str) or not (
                extra is None or (isinstance(extra, list) and all(isinstance(x, str) for x in extra))):
            return {"ok": False, "error": "lists: value and channel are strings, extra a list of strings"}
        store, left, warned = self.pipe.store, 0, []
        try:
            if kind == "dnc":
                number, ch = _record("dnc", value, channel, extra)
                L = self.pipe.lists
                found = any(number in b for c, b in (("S", L.dnc_s), ("V", L.dnc_v)) if c in ch)
                # journal first (durable, fsynced) and only then in force: an answered change is never lost
                store.append_delta(op, number, ch)
                (L.add_dnc if op == "add" else L.remove_dnc)(number, ch)
                stored = as_exported("dnc", (number, ch)) if op == "add" else None
                said = None
            else:
                if op == "add":     # (and the rows it replaced: a renewal's, a registration's for the same dates)
                    stored, said, left = await asyncio.to_thread(store.add_replacing, kind, value, channel, extra)
                    found = True
                else:               # (and the registrations a remove senders took)
                    found, said = await asyncio.to_thread(store.remove_listing, kind, value, channel, extra)
                # (the warnings of the read this change built on; a DNC change reads nothing: serve's start-up
                # warnings left in the store, said again with each, named journal lines long moved out)
                warned = list(store.warnings)
                from .serve import reload_lists
                err = await reload_lists(self.pipe)
                if err is not None:
                    return {"ok": False, "error": f"saved, but the lists reload failed (old lists in force): {err}"}
        except (ValueError, CsvError) as e:
            return {"ok": False, "error": f"lists {op} {kind}: {e}"}
        except OSError as e:
            return {"ok": False, "error": f"lists {op} {kind}: nothing changed: {e}"}
        ans = {"ok": True, "op": op, "kind": kind, "value": value}
        if op == "add":         # the row as `lists export` writes it, as the offline `lists add` says it
            ans["stored"] = stored
        else:
            ans["found"] = bool(found)
        if said:
            ans["replaced" if op == "add" else "rows"] = said
        if left:                # mlexempt rows past their valid_to that left the list with this add
            ans["expired_left"] = left
        if warnings := warned + ([expired_left(left)] if left else []):
            ans["warnings"] = warnings
        return ans
