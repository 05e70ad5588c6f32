"""serve's file watcher: once a second, systemd's status line, the rule files, the DNC journal's compaction (every
minute), the list snapshots a CLI writer installs and the journal lines another process appends. Moved here from
engine/serve.py, with one change: an unexpected exception in a look is logged (with its traceback, once a minute at
most, the rest counted in `pipe.watcher_errors`: /metrics `telfilter_file_watcher_errors`) and the watcher looks
again a second later. It ended silently: serve kept answering with the lists and rules it had, and no change made
by the CLI or to the rule files was picked up again until a restart.

A look that failed is not tried again every second: what it saw changed is taken as seen (as a refused reload is),
and the next change is picked up as usual.
"""
from __future__ import annotations

import asyncio
import logging
import time

from .serve_journal import catch_up_journal, compact_journal
from .serve_reload import reload_lists, reload_rules

log = logging.getLogger("telfilter")

ERROR_LOG_EVERY = 60.0          # seconds between two logged tracebacks of the watcher's errors


async def watch_files(pipe, watcher, notifier, status, every: float = 1.0) -> None:
    """Watch until cancelled (serve's stop). `status()`: the systemd status line (sent when it changed)."""
    seen: list = []         # [snapshot signature, journal signature] as last looked at
    ticks, last_log, unsaid = 0, None, 0
    while True:
        try:
            if not seen:    # from the files serve's start read (a CLI change since, its SIGHUP ignored then: lost)
                seen[:] = getattr(pipe, "lists_stamp", None) or (pipe.store.snapshot_signature(),
                                                                 pipe.store.journal_signature())
            await asyncio.sleep(every)
            ticks += 1
            await _look(pipe, watcher, notifier, status, ticks, seen)
        except asyncio.CancelledError:
            raise
        except Exception:
            pipe.watcher_errors += 1
            now = time.monotonic()
            if last_log is None or now - last_log >= ERROR_LOG_EVERY:
                last_log = now
                log.exception("file watcher: an unexpected error (%d more since the last one said); still watching: "
                              "lists, rules and the DNC journal are looked at again in %g s", unsaid, every)
                unsaid = 0
            else:
                unsaid += 1
            if not seen:            # (its first look failed: the next a tick later)
                await asyncio.sleep(every)


async def _look(pipe, watcher, notifier, status, ticks: int, seen: list) -> None:
    if notifier.active:     # STATUS= when it changed: O(binds + links) a second, never per message
        notifier.status(status())
    if watcher.changed():
        await reload_rules(pipe)
    if ticks % 60 == 0:
        await compact_journal(pipe)
    now, j = pipe.store.snapshot_signature(), pipe.store.journal_signature()
    lists_sig, journal_sig = seen
    if now != lists_sig and now == getattr(pipe, "lists_read", None):
        # a reload has read these snapshots already (a SIGHUP's, a `ctl reload`'s, a `ctl lists` change serve saved):
        # read again a second later, each such change was two reloads, logged and counted
        seen[0] = lists_sig = now
    # (taken as seen before the reload or catch-up: one that fails is not tried again every second)
    if now != lists_sig:    # a CLI `lists import/add/remove` (or a compaction) installed a snapshot
        seen[:] = now, j
        await reload_lists(pipe)
    elif j != journal_sig:  # appended to (by us, or by another process): the lines since the last
        seen[1] = j         # look, applied in journal order (ours again: the same end state)
        catch_up_journal(pipe)
