"""DNC changes and 5656 reports that a clean stop could not publish (Redis away), kept in the data dir
for the next start (replication.py: `close` saves them, serve calls `load_unpublished` after the
catch-up). Without this a change confirmed to a subscriber while Redis was away and the node then
restarted (a deploy) stayed on this node only: the others never had it.

One file per process (`lists/dnc-unpublished.<pid>.<random>.msgpack`; the workers of a pool share the
data dir): a starting process claims each file by renaming it (`….claimed.<pid>`: one winner) and puts
its changes first in the queue; the claimed file is deleted once the queue has been published (or its
content saved again at a stop), so a crash before then leaves it for the next start (a claimed file
whose process is gone is claimed again). A file that cannot be read is moved aside (*.unreadable) and
logged. Like a
change published late after an outage, one published after the restart lands after the other nodes'
later changes to the same number; the time each change was made in force travels with it (and is kept in
the file), so a follower that applied a later change to that number skips it.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import msgpack

from ..durable import pid_alive
from .dncchanges import Changes

log = logging.getLogger("telfilter")


def _unpublished_dir(data_dir) -> Path:
    return Path(data_dir) / "lists"


UNPUBLISHED = "dnc-unpublished"


class _Unpublished:
    """Mixin of DncReplicator: what a clean stop could not publish, kept for the next start. One file per
    process (workers share the data dir); a starting process claims each file by renaming it (one winner),
    publishes what it holds and deletes it."""

    def save_unpublished(self) -> Path:
        from ..durable import replace_file
        path = _unpublished_dir(self.pipe.store.dir) / f"{UNPUBLISHED}.{os.getpid()}.{secrets.token_hex(3)}.msgpack"
        replace_file(path, msgpack.packb({"format": "telfilter-dnc-unpublished", "version": 1,
                                          "segments": [c.to_dict() for c in self.out],
                                          "reports": list(self.out_reports)}, use_bin_type=True))
        log.warning("DNC replication: %d numbers and %d reports not published (%s away): kept in %s for the next "
                    "start", self.pending(), len(self.out_reports), self.url, path)
        self.published_all()                    # what was claimed is in the new file
        return path

    def published_all(self) -> None:
        """The queue is out (or saved again): the files claimed at start are done with."""
        for f in self._claimed:
            f.unlink(missing_ok=True)
        self._claimed = []

    def load_unpublished(self) -> int:
        """Claim the files earlier stops saved; their changes go first in the queue. Returns how many numbers."""
        n = 0
        d = _unpublished_dir(self.pipe.store.dir)
        orphans = [f for f in d.glob(f"{UNPUBLISHED}.*.msgpack.claimed.*") if not pid_alive(f.name.rsplit(".", 1)[1])]
        for f in sorted([*d.glob(f"{UNPUBLISHED}.*.msgpack"), *orphans]):
            base = f.name.split(".claimed.")[0]
            mine = f.with_name(f"{base}.claimed.{os.getpid()}")
            try:
                os.rename(f, mine)
            except FileNotFoundError:
                continue                        # another worker claimed it
            try:
                d = msgpack.unpackb(mine.read_bytes(), raw=False)
                segs = [Changes.from_dict(x) for x in d["segments"]]
                reports = [str(r) for r in d["reports"]]
            except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
                bad = f.with_name(base + ".unreadable")
                os.replace(mine, bad)
                log.error("DNC replication: %s unreadable (%s): moved to %s", f, e, bad)
                continue
            self.out[:0] = segs
            for seg in segs:                    # their times, so that an older change read back does not undo them
                for (num, ch), t in seg.at.items():
                    self._newer(num, ch, t)
            self.out_reports.extendleft(reversed(reports))
            self._bound_reports()
            n += sum(len(c) for c in segs)
            self._claimed.append(mine)
            log.info("DNC replication: %d numbers and %d reports a stop could not publish are published now (%s)",
                     sum(len(c) for c in segs), len(reports), f.name)
        if n or self.out_reports:
            self._soon()
        return n
