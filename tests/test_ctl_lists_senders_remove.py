"""`ctl lists remove senders SENDER --category/--owner/--valid-from/--valid-to/--accounts` on a running serve: only
the registrations that match are taken out, in force when answered, in the snapshot every other worker and a restart
read, and the service log's audit line names the registrations it took (a line reading as the removal of every
registration of the sender, the bank's CSKH one with the QC one, when only the expired QC period went)."""
import asyncio
import json
import logging
import os

from engine.app import build
from engine.control import ControlServer
from engine.lists import ListStore
from engine.lists.csvio import sender_entry_key


def _ask(path, reqs):
    async def main(pipe):
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        r, w = await asyncio.open_unix_connection(str(path))
        answers = []
        for req in reqs:
            w.write(json.dumps(req).encode() + b"\n")
            answers.append(json.loads(await r.readline()))
        w.close()
        await srv.stop()
        return answers
    return main


def _categories(L, sender):
    key = sender_entry_key(next(e for es in L.senders.values() for e in es if e.sender == sender))
    return sorted((e.category, str(e.valid_from)) for e in L.senders[key])


def test_a_partial_removal_is_in_force_saved_and_audited_as_partial(tmp_path, caplog):
    data = tmp_path / "data"
    store = ListStore(data)
    store.add("senders", "VNBANK", "SV", ["Vietnam Bank", "CSKH", "", "", ""])
    store.add("senders", "VNBANK", "SV", ["Vietnam Bank", "QC", "2026-01-01", "2026-06-30", ""])
    pipe = build(data_dir=data, with_model=False, persist=True)
    remove = {"cmd": "lists", "op": "remove", "kind": "senders", "value": "VNBANK",
              "extra": ["", "QC", "2026-01-01", "", ""]}
    with caplog.at_level(logging.INFO, logger="telfilter.service"):
        answers = asyncio.run(_ask(tmp_path / "c.sock", [remove, remove])(pipe))
    assert [(a["ok"], a["found"]) for a in answers] == [(True, True), (True, False)], answers
    assert _categories(pipe.lists, "VNBANK") == [("CSKH", "None")]               # in force here
    assert _categories(ListStore(data).load(), "VNBANK") == [("CSKH", "None")]   # what the others and a restart read
    lines = [r.getMessage() for r in caplog.records if r.name == "telfilter.service" and "ctl lists" in r.getMessage()]
    uid = os.getuid()
    assert lines == [f"ctl lists remove senders VNBANK category QC valid_from 2026-01-01 by uid {uid}",
                     f"ctl lists remove senders VNBANK category QC valid_from 2026-01-01 by uid {uid} "
                     "(was not listed)"], lines
