"""The DNC lists the other nodes were given, as a clean stop left them (`lists/dnc.published.msgpack`), so that the
next start publishes what changed in this data dir while serve was down.

A running serve publishes a CLI snapshot's DNC difference when it reloads it (serve_reload._reload_lists); a CLI
`lists import/add/remove dnc` made while serve was down (maintenance, a restart, a crash) was loaded by the next
start and published by nobody: the other nodes never had it, and nothing said so.

At a clean stop, once replication has published (or saved as unpublished: unpublished.py) everything, the process
that publishes CLI differences (a single serve, worker 0 of a pool: `writer`) writes the DNC bitmaps in force, S
and V, to this file, whole (durable.replace_file). The next start of that process reads it before the stream's
catch-up (the catch-up applies other nodes' changes, which are theirs to publish), diffs the lists it loaded
against it, deletes it (a crash later must never diff against a stale copy) and, after the catch-up and the
changes an earlier stop saved, publishes the difference as a reload publishes a CLI snapshot's (publish_diff).
No file (the first start, or the last stop was not clean): nothing is published, as before, and that is said. A
file that cannot be read is said, deleted, and nothing is published; so is a DNC list loaded from its previous
snapshot generation or from no snapshot while the file's was read from one (the difference would remove, on every
node, what a damaged or missing snapshot lacks: lists.reuse.dnc_not_whole, which a reload refuses too), and a file
left at a stream id the node's (`lists/dnc.stream-id`) has moved on from: a version before this file ran on the data dir
since (gone back to, then forward again), whose own changes the difference would publish again at this start's
time, changing back on every node a number another node changed since.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import msgpack
from pyroaring import BitMap64

from ..durable import remove_dead_writers_tmp, replace_file
from ..servicelog import life
from .stream_follower import stream_id_key

log = logging.getLogger("telfilter")

PUBLISHED = "dnc.published.msgpack"
FORMAT = "telfilter-dnc-published"


class _Published:
    """Mixin of DncReplicator: the DNC lists a clean stop left published, diffed by the next start."""

    @property
    def published_path(self) -> Path:
        return Path(self.pipe.store.dir) / "lists" / PUBLISHED

    async def save_published(self) -> None:
        """At a clean stop, everything published or saved for the next start: the DNC lists in force (the
        writer's only). Bitmaps serialised on the loop (nothing changes them any more), written in a thread."""
        if not self.writer:
            return
        L = self.pipe.lists
        data = msgpack.packb({"format": FORMAT, "version": 1, "S": L.dnc_s.serialize(), "V": L.dnc_v.serialize(),
                              "snapshot": L.sources.get("dnc", 0) is not None, "stream_id": self.last_id},
                             use_bin_type=True)
        try:
            await asyncio.to_thread(replace_file, self.published_path, data)
        except OSError as e:
            log.error("DNC replication: %s not written (%s): CLI DNC changes made before the next start will not "
                      "be published to the other nodes", self.published_path, e)

    def changes_while_down(self) -> None:
        """At the start, before the catch-up (the writer's only): the lists loaded and those the last clean stop left
        published, kept for `publish_while_down` (SimpleNamespace(dnc_s, dnc_v) pairs: old, new). The file is
        deleted whatever it held."""
        self._while_down = None
        if not self.writer:
            return
        p = self.published_path
        remove_dead_writers_tmp(p)          # a stop killed -9 while it wrote the file
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            log.warning("DNC replication: no record of the DNC lists a clean stop left published (%s: a first "
                        "start, the last stop was not clean, or was one of a version before 2026-12-06): CLI DNC "
                        "changes made since the last clean stop, if any, are not published to the other nodes", p)
            return
        except OSError as e:
            return self._published_unusable(f"unreadable: {e.strerror or e}")
        try:
            d = msgpack.unpackb(raw, raw=False)
            if d.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            old = SimpleNamespace(dnc_s=BitMap64.deserialize(d["S"]), dnc_v=BitMap64.deserialize(d["V"]),
                                  sources={"dnc": True if d["snapshot"] else None})
            left_at = d.get("stream_id")        # (none: written before it was kept)
            moved_on = left_at is not None and stream_id_key(self.last_id) > stream_id_key(left_at)
        except (ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException) as e:
            return self._published_unusable(f"damaged: {e}")
        if moved_on:
            return self._published_unusable(
                f"was left at stream id {left_at}, and {self.id_path.name} has moved on to {self.last_id} since: a "
                "serve ran on this data dir (a version before this file, which neither reads nor removes it)")
        from ..lists.reuse import dnc_not_whole
        why = dnc_not_whole(self.pipe.store, self.pipe.lists, old)
        if why:
            return self._published_unusable(f"the DNC list was not read whole ({why}): restore the dnc snapshot or "
                                            "import the DNC file again")
        try:
            p.unlink()
        except OSError as e:        # (read again at the next start: a stale copy, the same difference published again)
            log.error("DNC replication: %s not deleted: %s", p, e)
        # (copies: the catch-up changes the lists in force in place)
        self._while_down = old, SimpleNamespace(dnc_s=self.pipe.lists.dnc_s.copy(), dnc_v=self.pipe.lists.dnc_v.copy())

    def _published_unusable(self, why: str) -> None:
        """Said, and the file deleted: nothing is published."""
        log.error("DNC replication: %s %s: deleted, CLI DNC changes made while serve was down are not published to "
                  "the other nodes", self.published_path, why)
        try:
            self.published_path.unlink(missing_ok=True)
        except OSError as e:
            log.error("DNC replication: %s not deleted: %s", self.published_path, e)

    def publish_while_down(self) -> int:
        """After the catch-up and the changes an earlier stop saved: publish `changes_while_down`'s difference (also
        called by `close`: a start stopped before, a SIGINT during the catch-up, must not leave it out of the file
        it writes)."""
        diff, self._while_down = self._while_down, None
        if diff is None:
            return 0
        n = self.publish_diff(*diff)
        if n:
            life.info("DNC replication: %d changes made while serve was down published", n)
        return n
