"""Mixed into SmppProxy: its stop -- the graceful drain first (SIGTERM/SIGINT in serve), then `stop`, which closes
the sessions and links once every message taken has its answer (5656 commands written, receipts sent or held)."""
from __future__ import annotations

import asyncio
import logging
import time

from .codec import constants as C
from .codec import pdu as P

COMMANDS_WAIT = 10.0        # seconds a stop waits for the 5656 commands it took to be written and answered
log = logging.getLogger("telfilter.smpp")
life = logging.getLogger("telfilter.service")   # start-up and stop lines, shown without -v (servicelog.py)


class Stopping:
    """Mixed into SmppProxy (server.py)."""

    async def stop(self):
        self.stopping = True                # link loops end and spawn nothing more
        # MO parts still waiting (a stop without a drain) are judged with what arrived while the
        # links are up, so each is answered once and no reassembly timer fires after the stop; but a 5656
        # message whose parts are all on disk waits in the journal for the rest (mo_journal.py)
        self._mo_set_aside()
        self.mo_concat.judge_all()
        self._answer_early_receipts()       # each deliver_sm answered once, before the links close
        self._rejected_receipts_now()       # sent while the receivers are bound, or held (on disk below)
        self._receipts_after_resp_now()     # the same for receipts waiting a little after their resp
        await self.commands_written()       # 5656 commands taken are answered before the links close
        for w, what in ((self.held_writer, "receipts being held"), (self.mo_parts_writer, "5656 message parts")):
            if w is not None and not await w.idle(COMMANDS_WAIT):
                log.error("stop: %s still being written after %.0f s (a stalled disk); the SMSC delivers them "
                          "again", what, COMMANDS_WAIT)
        for t in self.tasks:
            t.cancel()
        for s in list(self.sessions):
            s.close()
        for l in self.links:
            if l.transport:
                l.transport.close()
        for srv in self._listeners():
            srv.close()
            await srv.wait_closed()
        # let the cancelled link loops and housekeeping finish while the loop still runs; a link
        # loop may have spawned another (the TX+RX fallback) meanwhile, and asyncio.wait_for in
        # Python 3.11 can swallow a cancel that races its inner future: cancel until none is left
        for _ in range(5):
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=2)
        self.caps.close()                   # its connection cap leaves the process's fd budget (engine/fdbudget.py)
        if self.commands is not None:
            self.commands.close()

    async def commands_written(self, timeout: float = COMMANDS_WAIT) -> None:
        """Wait (at most `timeout`) until every 5656 command taken is on disk and answered."""
        if self.commands is not None and not await self.commands.idle(timeout):
            log.error("stop: %d 5656 command(s) still being written after %.1f s (a stalled disk): each is put in "
                      "force and answered if its write ends while the loop runs, else the SMSC delivers it again "
                      "and the next start has it from the journal", self.commands.waiting, timeout)

    async def drain(self, timeout: float = 10.0, unbind_wait: float = 1.0) -> dict:
        """Graceful stop, before `stop()` (SIGTERM/SIGINT in serve).

        Order matters: (1) stop accepting connections, and from now on answer new submits
        with ESME_RTHROTTLED (retryable: the ESME resends them to another node or after the
        restart) and new binds with ESME_RBINDFAIL; (2) judge the concatenated messages still
        waiting for parts with what has arrived (submits from ESMEs, MO from the SMSC), so each
        part gets its answer; (3) wait until `timeout` less the unbind wait for every request
        already forwarded to an SMSC to be answered (the answers are relayed to the ESMEs as
        usual); whatever is still unanswered at the deadline gets ESME_RSYSERR, the status of a
        response timeout (outcome unknown); (4) send unbind to every ESME and every SMSC link and
        wait up to `unbind_wait` (at most half of `timeout`) for the unbind_resps, so the whole
        drain takes at most `timeout`.
        No forwarded submit is left unanswered. Returns counts for the log."""
        self.draining = True
        for srv in self._listeners():
            srv.close()                     # no new connections; the bound ones stay
        unbind_wait = min(unbind_wait, timeout / 2)      # the whole drain fits in `timeout`
        end = time.monotonic() + timeout - unbind_wait
        self.concat.judge_all()
        self._mo_set_aside()                # (a 5656 message whose parts are all on disk: the next start's)
        self.mo_concat.judge_all()
        if self.shared_mo is not None:      # 5656 messages in parts put together in Redis (state/mo_parts.py)
            await self.shared_mo.close(max(0.0, end - time.monotonic()))
        await self.commands_written(max(0.0, end - time.monotonic()))
        in_flight = sum(len(l.window.pending) for l in self.links)
        shared = self.pipeline.state.shared     # verdicts still waiting for a shared state store count too
        while (any(l.window.pending for l in self.links) or (shared is not None and shared.busy) or self.grace_held) \
                and time.monotonic() < end:
            await asyncio.sleep(0.02)
        unanswered = 0
        for l in list(self.links):
            for seq, (_, on_resp) in list(l.window.pending.items()):
                l.window.pending.pop(seq, None)
                unanswered += 1
                on_resp(None, C.ESME_RSYSERR)
        self._answer_early_receipts()       # those whose resp never came: delivered again after the restart
        self._receipts_after_resp_now()     # their resps went out during the wait above: sent before the unbinds
        self._rejected_receipts_now()       # silent drops' REJECTD receipts in their 1 s wait: the same
        self.stopping = True                # a link that goes away now is not bound again
        waiting = []
        loop = asyncio.get_running_loop()
        for sess in list(self.sessions):
            if sess.account is not None and not sess.closed and sess.state.state != "UNBOUND":
                f = loop.create_future()
                waiting.append(f)
                self._send_to_esme(sess, P.Unbind(), lambda r, f=f: f.done() or f.set_result(r))
        for l in list(self.links):
            if l.bound and l.transport is not None and not l.transport.is_closing():
                f = loop.create_future()
                waiting.append(f)
                l.request(P.Unbind(), lambda r, st, f=f: f.done() or f.set_result(r))
        if waiting:
            await asyncio.wait(waiting, timeout=unbind_wait)
        stats = {"in_flight": in_flight, "unanswered": unanswered, "unbinds": len(waiting),
                 "unbind_resps": sum(1 for f in waiting if f.done() and f.result() is not None)}
        # on the service logger, as the SIP screen's `SIP drained:` line: telfilter.smpp's INFO needs -v, and an
        # operator checking a stop saw the SIP drain said and nothing of the submits in flight
        life.info("SMPP drained: %(in_flight)d requests in flight at the stop, %(unanswered)d unanswered at the "
                  "deadline; %(unbind_resps)d of %(unbinds)d unbinds answered", stats)
        return stats
