"""The DNC journal of a running serve: its catch-up (lines another process appended, applied) and its compaction into the snapshot. Called by serve's file watcher (serve_watch.py) and after a lists
reload; moved here from serve_reload.py (its role: the journal, not reloading)."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("telfilter")


def catch_up_journal(pipe) -> None:
    """Apply the DNC journal lines appended since the lists in force last read it (on the loop: a
    few lines a second, read under the journal lock held only for each append). Not published to the other nodes
    (README Known limits): told from this process's own lines only by the lists in force, a catch-up republished
    its own changes made twice within a tick, or a 5656 command journalled and not yet put in force, with a newer
    time than another node's change to that number (a confirmed DK DNC undone on every node)."""
    try:
        pipe.store.catch_up(pipe.lists)
    except OSError as e:
        log.error("DNC journal not read (the lists in force may miss changes another process made): %s", e)
        return
    for w in pipe.store.warnings:
        log.warning("%s", w)


async def compact_journal(pipe) -> None:
    """Keep the DNC journal bounded: fold it into the snapshot in a worker thread."""
    from .lists import ListStore
    try:
        if await asyncio.to_thread(ListStore(pipe.store.dir, pipe.store.tz).compact_journal):
            log.info("DNC journal folded into the dnc snapshot")
    except Exception as e:          # a corrupt snapshot (strict load) or a full disk: keep journalling
        log.error("DNC journal compaction failed, the journal keeps every change: %s", e)
