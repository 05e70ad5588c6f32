"""The control socket's stop (ControlServer.stop, from serve's stop after the drain): a peer connected before it
keeps its connection (the listener closes, accepted peers do not), and a request it sends afterwards was run. serve's
stop goes on meanwhile (the held receipts saved, the state closed, DNC replication closed: what waits is saved for the
next start to publish), so a `ctl lists add dnc` that came then was journalled and put in force here, answered ok,
and its publication to the other nodes queued after the replication had closed: never published, never saved.
A request after the stop is refused (nothing done; the client asks the next start, or another node)."""
import asyncio
import json

from engine.app import build
from engine.control import ControlServer


def test_a_request_from_a_peer_connected_before_the_stop_is_refused_after_it(tmp_path):
    pipe = build(data_dir=tmp_path / "data", with_model=False)
    published = []
    pipe.store.publish = lambda *change: published.append(change)      # (replication's hook)
    path = tmp_path / "c.sock"

    async def main():
        srv = ControlServer(pipe, path, on_drain=lambda: None)
        await srv.start()
        r, w = await asyncio.open_unix_connection(str(path))
        w.write(b'{"cmd": "stats"}\n')          # accepted and served before the stop
        await w.drain()
        before = json.loads(await asyncio.wait_for(r.readline(), 10))
        await srv.stop()
        w.write(json.dumps({"cmd": "lists", "op": "add", "kind": "dnc", "value": "84912345678",
                            "channel": "SV"}).encode() + b"\n")
        await w.drain()
        after = await asyncio.wait_for(r.readline(), 10)
        w.close()
        return before, json.loads(after) if after else None
    before, after = asyncio.run(main())
    assert before["ok"] is True
    assert after is None or (after["ok"] is False and after.get("stopping") is True), after
    assert published == [] and 84912345678 not in pipe.lists.dnc_s, published
