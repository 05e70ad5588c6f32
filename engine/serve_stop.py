"""What `telfilter serve`'s start opens, closed in one order: at the stop, and when the start fails after opening some
of it (a port in use, a model or state error, a SIGINT while it starts).

A start that failed used to leave what it had opened to the process's exit: the verdict log's and the message-id
log's crash spools (8 MiB each, beside the log and in DATA_DIR/smpp) stayed behind (the next start recovered them),
the control socket's note for `ml promote` named a socket nobody answers, and the state was not snapshotted. Each
is closed here only if the start got as far as opening it (None: not opened). The order is the stop's: the control
socket, the lists and model reloads under way (settle_reloads), the proxy (its journals before the message-id map),
the SIP screen, the state, the shared state's followers (DNC replication writes the lists it left published:
state/published.py), the serve lock, the metrics listener, and the verdict log
last (every line written to the log before its spool is deleted).
"""
from __future__ import annotations

import asyncio
import logging
import os

from .analyst.serves import unregister

log = logging.getLogger("telfilter")


class Opened:
    """serve's long-lived parts, set by run_serve as each opens (None until then)."""

    def __init__(self):
        self.state_store = self.serve_lock = self.control = self.noted = self.metrics = self.vlog = None
        self.proxy = self.idlog = self.ids_file = self.taken = self.sip = self.st_task = None
        self.replicator = self.follow = self.pool = self.pool_task = self.receipts = self.receipts_task = None
        self.shared_mo = self.pipe = None
        self.ids_read = False           # the message-id map holds what the last run left (IdLog.open ran)

    async def close(self, control_wait: float = 0.0) -> int:
        """Everything opened, closed in the stop's order; the exit status (1: state not saved, or DNC changes the
        other nodes will never get)."""
        from .smpp_proxy.msgids import save_map
        proxy, idlog = self.proxy, self.idlog
        loop = asyncio.get_running_loop()
        until = loop.time() + control_wait
        if self.control is not None:    # a command under way (a reload) is answered, within `control_wait`
            await self.control.stop(wait=control_wait)
            unregister(self.noted)
        if self.pipe is not None:       # the reloads under way (a SIGHUP's, the watcher's), within what is left of it
            await settle_reloads(self.pipe, max(0.0, until - loop.time()))
        if proxy is not None:
            await proxy.stop()
        if self.receipts is not None:
            if self.receipts_task is not None:
                self.receipts_task.cancel()
            await self.receipts.close()     # a hand-over under way ends before the held receipts are saved
        if self.shared_mo is not None:
            await self.shared_mo.close()    # 5656 messages in parts this process waits for: left in Redis for the rest
        if proxy is not None:
            try:
                await proxy.close_mo_parts()         # acknowledged 5656 message parts: put back at the next start
            except OSError as e:
                log.error("5656 message parts could not be rewritten (%s): the journal keeps them for the next "
                          "start", e)
            try:
                await proxy.close_held()             # acknowledged to the SMSC: offered again at the next start
            except OSError as e:
                log.error("held receipts could not be rewritten (%s): the journal keeps %d of them for the next "
                          "start", e, proxy.held_total)
        if idlog is not None and self.ids_read:     # (not read: saving the map would overwrite the last run's)
            saved = False
            try:
                save_map(proxy.msgid_account, self.ids_file)   # which account sent what: receipts after the restart
                saved = True
            except OSError as e:
                log.error("message-id map could not be saved whole (%s): %s", e, "the next start reads its log"
                          if idlog.writer is not None else "its log was not started: the ids of this run are lost")
            await idlog.close(clean=saved)
        if proxy is not None:
            await proxy.scheduled.close()           # ads scheduled ahead: the journal rewritten as what is indexed
        if self.sip is not None:
            await self.sip.stop()   # (its answered calls saved, read back at the next start: sip_screen/dialogstore.py)
        if self.st_task is not None:
            self.st_task.cancel()
        status = 0
        if self.state_store is not None:
            try:
                await self.state_store.close()      # after the last commit: flush + snapshot, nothing lost
            except OSError as e:        # a full or failing disk: the rest of the stop still runs (the verdict log)
                lost = len(getattr(self.state_store, "buf", ())) + getattr(self.state_store, "unjournalled", 0)
                log.error("state could not be saved at the stop (%s): %d counter updates never written to the "
                          "journal are lost (the next start has the state as of the last write that succeeded)",
                          e, lost)
                status = 1
        if self.taken is not None:
            self.taken.release()
        if self.replicator is not None:
            for t in (self.follow, self.pool_task):
                if t is not None:
                    t.cancel()
            if self.pool is not None:
                await self.pool.close()
            if not await self.replicator.close():      # confirmed DNC changes the other nodes will never get
                status = 1
        if self.serve_lock is not None:     # (after the DNC lists left published are written: the next start's)
            os.close(self.serve_lock)
        if getattr(self.metrics, "server", None) is not None:      # (its listener bound)
            await self.metrics.stop()
        if self.vlog is not None:
            self.vlog.close()
        return status


async def settle_reloads(pipe, wait: float) -> None:
    """The lists and model reloads under way (serve_reload.under_way) let finish for up to `wait` seconds, then
    cancelled, before the stop closes what they use (DNC replication, which publishes a CLI DNC change a lists
    reload read); none begins from here (the next part of a `ctl reload` the control socket's wait gave up on)."""
    pipe.reloads_stopped = True
    run = set(getattr(pipe, "reloads_under_way", None) or ())
    if not run:
        return
    _, left = await asyncio.wait(run, timeout=wait)
    if left:
        log.warning("%d lists or model reload%s still reading at the stop: abandoned, the files are read at the next "
                    "start%s", len(left), "s" * (len(left) != 1), " (a CLI DNC change among them is published to the "
                    "other nodes by that start)" if getattr(pipe, "replicator", None) is not None else "")
        for t in left:
            t.cancel()
        await asyncio.wait(left)
