"""serve's signals beside its event loop (engine/serve.py): SIGHUP's and SIGUSR1's reloads one at a time, a SIGHUP
reload announced to systemd, and the hand-over of the loop's handlers to SIG_IGN at the stop with no moment of the
default action (which ends the process)."""
from __future__ import annotations

import logging
import signal

log = logging.getLogger("telfilter")


class OneAtATime:
    """A reload signal's work (SIGHUP's, SIGUSR1's), one at a time: a signal while one runs asks for one more after it
    (what changed since it began reading), so a burst costs two, as SIGUSR2's reopens do (servicelog). Each signal
    began its own, its reading queued in the loop's executor ahead of everything else there: 100 SIGUSR1s loaded 63
    models, and a stop that came meanwhile (its own steps queued behind them) took 6.4 s of a 1 s --drain-timeout.
    `work`: makes the coroutine of one reload."""

    def __init__(self, work, name: str = "reload signal"):
        self.work, self.name = work, name
        self.running = self.again = self.stopped = False

    def ask(self, spawn) -> None:
        """From the signal's handler, on the loop: `spawn` starts the coroutine given as a task."""
        if self.stopped:
            return
        if self.running:
            self.again = True
            return
        self.running = True
        spawn(self._run())

    def stop(self) -> None:
        """serve's stop began: none asked any more, nor the one more a signal asked after the one under way. That one
        is said to be dropped (it was not: the operator took the change it was sent for as applied). Not run before
        the exit: it would hold the stop for a whole read (seconds with a large registry) whose result the exit
        throws away; the files are on disk, and the next start reads them (and publishes a CLI DNC change among
        them to the other nodes)."""
        if self.running and self.again and not self.stopped:
            log.warning("%s sent during the reload under way not applied: serve is stopping (the files are read at "
                        "the next start)", self.name)
        self.stopped = True

    async def _run(self) -> None:
        try:
            while True:
                self.again = False
                await self.work()
                if not self.again or self.stopped:
                    return
        finally:
            self.running = False


def ignore_from_here(loop, sigs) -> None:
    """The loop's handlers of `sigs` (reload, log reopen, stop) replaced by SIG_IGN in one sigaction each. Their
    handlers are Python functions, so the interpreter's finalisation would put back the default action, which ends the
    process: logrotate's SIGUSR2 at that moment made the exit a death by signal 12. Not through
    loop.remove_signal_handler, which sets SIG_DFL first: a SIGUSR2 in the microseconds before SIG_IGN killed the
    process all the same (a pool worker under a stream of them: its crash spool was left). asyncio's own loop
    forgets the handler too, else its close() puts back SIG_DFL (uvloop's close leaves the disposition as it is)."""
    for sig in sigs:
        signal.signal(sig, signal.SIG_IGN)
        own = getattr(loop, "_signal_handlers", None)           # (asyncio's selector loop: a dict; uvloop: none)
        if isinstance(own, dict):
            own.pop(sig, None)


async def _announced(notifier, reload) -> None:
    """A SIGHUP reload between RELOADING=1 and READY=1 (sd_notify(3); nothing when not under systemd)."""
    notifier.reloading()
    try:
        await reload
    finally:
        notifier.reloaded()
