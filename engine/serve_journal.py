"""The DNC journal of a running serve: its catch-up (lines another process appended, applied and, with replication,
published) and its compaction into the snapshot. Called by serve's file watcher (serve_watch.py) and after a lists
reload; moved here from serve_reload.py (its role: the journal, not reloading)."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("telfilter")


def catch_up_journal(pipe) -> None:
    """Apply the DNC journal lines appended since the lists in force last read it (on the loop: a
    few lines a second, read under the journal lock held only for each append). With replication, the lines
    that change the lists in force -- another process's (`telfilter check` of a 5656 command on this data dir):
    this process's own lines and the other nodes' are in force when read again -- are published as this
    node's changes (before, they reached this node only)."""
    rep = getattr(pipe, "replicator", None)
    changed = [] if rep is not None and rep.writer else None
    try:
        pipe.store.catch_up(pipe.lists, changed)
    except OSError as e:
        log.error("DNC journal not read (the lists in force may miss changes another process made): %s", e)
        return
    for w in pipe.store.warnings:
        log.warning("%s", w)
    for op, number, channels in changed or ():
        rep.publish(op, number, channels)
    if changed:
        log.info("DNC replication: %d changes another process journalled here published", len(changed))


async def compact_journal(pipe) -> None:
    """Keep the DNC journal bounded: fold it into the snapshot in a worker thread."""
    from .lists import ListStore
    try:
        if await asyncio.to_thread(ListStore(pipe.store.dir).compact_journal):
            log.info("DNC journal folded into the dnc snapshot")
    except Exception as e:          # a corrupt snapshot (strict load) or a full disk: keep journalling
        log.error("DNC journal compaction failed, the journal keeps every change: %s", e)
