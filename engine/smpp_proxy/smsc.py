"""SMSC side: `UpstreamMixin` keeps the SMSC links bound (reconnecting with back-off), picks one for each
request (round robin, within an account's share of a window) and closes a link that answers nothing; each link,
`SmscLink` (one bind with its own window), is in smsc_link.py."""
from __future__ import annotations

import asyncio
import logging
import time

from ..listen import addr_text
from .codec import constants as C
from .codec import encode
from .codec import pdu as P
from .smsc_link import SmscLink, _keepalive
from .tls import smsc_start_tls

log = logging.getLogger("telfilter.smpp")
life = logging.getLogger("telfilter.service")   # INFO without -v: each bind, so an outage's log says when it ended

MAX_LATE = 4096         # timed-out requests remembered per link, to recognise late answers
TIMEOUTS_TO_REBIND = 3  # requests timed out in a row, no answer in between: the link is closed and bound again
# a link bound this long (or at most reconnect_max) that answered nothing still starts the reconnect back-off again
STABLE_LINK = 10.0
BIND_WAIT = 10.0        # seconds a bind to the SMSC may wait for its answer
# The last 1/RESERVE_SHARE of a link's window is kept for light accounts while another account is bound: an
# account holding that many requests in the SMSC windows (`upstream_held`) takes a slot there only while more are
# free. Else one ESME at its throughput (or with a window larger than the link's) holds the whole window and every
# other account's messages get ESME_RTHROTTLED: a bank's OTP at 50/s beside an advertiser at its 2,000/s on a
# link of window 20 had 18-40% of its submits throttled (tenants probe); one that needs the link alone has it all.
# "Another account" is one that asked for a slot in the last RESERVE_ACTIVE seconds (a throttled attempt counts):
# kept for any bound account, the quarter stood idle beside a bound but quiet one (the flooding account's goodput
# on a saturated link fell 20-37%); now the first submit of an account quiet that long may be throttled once while
# the flooding one gives back the slots it holds over its share.
RESERVE_SHARE = 4
RESERVE_ACTIVE = 60.0


class UpstreamMixin:
    """Mixin of `SmppProxy`: the pool of SMSC links."""

    async def wait_upstream(self, timeout=5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(l.bound for l in self.links):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _link_loop(self, name: str, kind="transceiver"):
        """One SMSC connection (`name` is its "host:port"), kept bound. An SMSC that does not
        know bind_transceiver (generic_nack or ESME_RINVCMDID) is used through a transmitter link
        plus a receiver link (SMPP 3.3-style)."""
        addr = parse_addr(name)
        where = addr_text(*addr)
        delay = self.settings.reconnect_min
        suspect = False                     # the last link bound timed out and answered nothing (SmscLink.suspect)
        lost_at = None                      # when the last bound link was lost (None: none bound yet)
        loop = asyncio.get_running_loop()
        bind_cls = {"transceiver": P.BindTransceiver, "transmitter": P.BindTransmitter, "receiver": P.BindReceiver}
        while not self.stopping:
            link = SmscLink(self, addr, kind, name)
            link.suspect = suspect
            try:
                await loop.create_connection(lambda: link, addr[0], addr[1])
                if name in self.link_tls:           # SMPP over TLS to this SMSC (tls.py)
                    await smsc_start_tls(loop, link, *self.link_tls[name])
                bind = encode(bind_cls[kind](
                    sequence_number=link.conn.next_sequence(), system_id=self.settings.smsc_system_id,
                    password=self.settings.smsc_password, interface_version=0x34))
                link.bind_waiter = loop.create_future()         # (after the encode: one that fails leaves none)
                link.transport.write(bind)
                try:
                    resp = await asyncio.wait_for(link.bind_waiter, BIND_WAIT)
                except asyncio.TimeoutError:    # (its str is empty: the retry's warning said 'SMSC host:port: ;')
                    raise ConnectionError(f"no answer to our bind within {BIND_WAIT:g}s") from None
                if resp.command_status != 0:
                    # only "unknown command" says the SMSC has no transceiver binds; ESME_RBINDFAIL (its
                    # maintenance, a session limit) or another refusal is retried as a transceiver, with back-off
                    if kind == "transceiver" and (resp.command_id == C.GENERIC_NACK
                                                  or resp.command_status == C.ESME_RINVCMDID):
                        log.warning("SMSC %s refuses transceiver binds (0x%02x): using transmitter + receiver",
                                    where, resp.command_status)
                        kind = "transmitter"
                        if not self.stopping:
                            self.tasks.append(asyncio.create_task(self._link_loop(name, "receiver")))
                        delay = 0
                    raise ConnectionError(f"bind refused with status 0x{resp.command_status:02x}")
                link.bound = True
                self.links.append(link)
                bound_at = time.monotonic()
                if lost_at is None:
                    life.info("bound to SMSC %s as %s", where, kind)
                else:
                    life.info("bound to SMSC %s as %s again, %.1fs after the link was lost", where, kind,
                              bound_at - lost_at)
                await link.lost
                lost_at = time.monotonic()
                up = lost_at - bound_at
                # the back-off starts again for a link that worked: it answered traffic, or stayed bound STABLE_LINK
                # (an idle one dropped by the SMSC's idle timer). A link whose requests timed out and that answered
                # none (a half-hung SMSC), or one dropped as soon as it was bound (an SMSC that accepts every bind,
                # then unbinds or closes: before, bound again every reconnect_min for ever), keeps it growing
                suspect = not link.proven and bool(link.last_timeout)
                if not suspect and (link.proven or up >= min(STABLE_LINK, self.settings.reconnect_max)):
                    delay = self.settings.reconnect_min
                if not self.stopping:
                    owed = link.unanswered_at_loss
                    log.warning("SMSC %s: link lost after %.1fs bound%s; binding again in %.1fs", where, up,
                                f" with {owed} request(s) unanswered (answered ESME_RSYSERR, outcome unknown)"
                                if owed else "", delay)
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                log.warning("SMSC %s: %s; retrying in %.1fs", where, e, delay)
            except Exception:
                # a bug, or a setting the bind cannot carry: said, and tried again (the task ended in silence,
                # and with it every bind to that SMSC: each submit_sm got ESME_RTHROTTLED with nothing in the log)
                self.stats["smsc_link_errors"] += 1
                log.exception("SMSC %s: internal error on its link; retrying in %.1fs", where, delay)
            finally:
                if link in self.links:
                    self.links.remove(link)
                if link.transport:
                    link.transport.abort()         # a hung peer may never take the buffered bytes
            await asyncio.sleep(delay)
            # (the immediate retry after a fall-back to transmitter + receiver is 0: the back-off starts again
            # from reconnect_min, else a refused transmitter bind was retried at once, for ever)
            delay = min(self.settings.reconnect_max, max(self.settings.reconnect_min, delay * 2))

    def id_spaces(self) -> set:
        """The id spaces of the SMSC links configured ([[upstream.smsc]] id_space; "" by default), bound now or
        not: `self.links` holds the links bound now only (one lost is removed until it binds again), and an id
        issued by an SMSC whose link is binding again is still that SMSC's to answer about."""
        s = self.settings
        return {s.smsc_links.get(a, {}).get("id_space", "") for a in s.smsc} or {""}

    def _pick_link(self, room: int = 1, space: str | None = None, account: str | None = None):
        """The next link (round robin) that can take `room` requests now (of id space `space` when
        given; for `account`, within its share: RESERVE_SHARE), or None."""
        n = len(self.links)
        if account is not None:
            held = self.upstream_held.get(account, 0)
            self.upstream_seen[account] = self.coarse_now       # (a dict of the accounts: bounded by the config)
        else:
            held = 0
        kept = False
        for i in range(n):
            link = self.links[(next(self._rr)) % n]
            # a message of more parts than a window holds needs an empty window, not an impossible one
            if link.available and (room == 1 or len(link.window.pending) + min(room, link.window.size)
                                   <= link.window.size) and (space is None or link.id_space == space):
                # (_in_reserve's first test inline: an account holding less than the reserve is never kept out of it)
                if held and held >= link.window.size // RESERVE_SHARE and self._in_reserve(link, room, held, account):
                    kept = True
                    continue
                return link
        if kept:
            self.stats["upstream_reserve_kept"] += 1
        return None

    def _in_reserve(self, link, room: int, held: int, account: str) -> bool:
        """True when `room` more requests of `account` (holding `held` in the SMSC windows) would go into the part
        of `link`'s window kept for the other accounts (RESERVE_SHARE) and another account holding less than the
        reserve asked for a slot in the last RESERVE_ACTIVE seconds."""
        w = link.window
        reserve = w.size // RESERVE_SHARE
        if held < reserve or w.size - len(w.pending) - min(room, w.size) >= reserve:
            return False
        since, held_by = self.coarse_now - RESERVE_ACTIVE, self.upstream_held
        # (kept for a light account only: another holding its share or more cannot use the reserve either, and two
        # flooding accounts left it idle for ever)
        return any(a != account and t >= since and held_by.get(a, 0) < reserve
                   for a, t in self.upstream_seen.items())

    def _link_housekeeping(self, now: float) -> None:
        """Expire requests, probe every link on schedule (window full or not: a full window
        is exactly when we need to know), and replace a link that answers nothing (SmscLink)."""
        s = self.settings
        for link in list(self.links):
            probes = link.probes
            lost = []           # (one warning for them all: a hung SMSC's window of 200 was 200 lines at once)
            for seq, on_resp in link.window.expired(now):
                self.stats["smsc_timeouts"] += 1
                if on_resp is _keepalive:
                    log.warning("SMSC %s did not answer enquire_link seq %d within %.1fs", link.where, seq,
                                link.response_timeout)
                    probes.discard(seq)
                    continue
                lost.append(seq)
                link.timed_out[seq] = on_resp
                if len(link.timed_out) > MAX_LATE:
                    link.timed_out.popitem(last=False)
                link.last_timeout = now
                link.timeouts_in_row += 1
                on_resp(None, C.ESME_RSYSERR)
            if lost:
                log.warning("SMSC %s did not answer %d request(s) within %.1fs (seq %s): answered ESME_RSYSERR, "
                            "outcome unknown (a late answer is logged)", link.where, len(lost),
                            link.response_timeout, lost[0] if len(lost) == 1 else f"{lost[0]} … {lost[-1]}")
            if link.retire_by:
                if not link.window.pending or now >= link.retire_by:
                    link.transport.abort()          # what is still owed: ESME_RSYSERR (connection_lost)
                continue
            silent = now - link.last_rx
            if silent > s.enquire_link_interval + link.response_timeout:
                log.warning("SMSC %s answered nothing for %.0fs: closing the link and binding again",
                            link.where, silent)
                self.stats["smsc_hung"] += 1
                link.bound = False
                link.transport.abort()
                continue
            pending = link.window.pending
            owed = len(pending) - sum(1 for q in probes if q in pending)      # not counting enquire_links
            timed_out = link.last_timeout > link.last_answer
            if link.timeouts_in_row >= TIMEOUTS_TO_REBIND or (
                    timed_out and not owed and now - link.last_timeout >= s.smsc_stall_after):
                log.warning("SMSC %s let %d request(s) in a row time out and answered none since (whatever it "
                            "answers to enquire_link): closing the link and binding again", link.where,
                            link.timeouts_in_row)
                self.stats["smsc_half_hung"] += 1
                link.bound = False
                link.transport.abort()
                continue
            # stalled: its last timeout newer than its last answer, or owing answers (the oldest sent over
            # stall_after ago) with none for stall_after; the first entry of a window is its oldest
            link.stalled = timed_out or (bool(pending) and now - max(
                link.last_answer, next(iter(pending.values()))[0] - link.window.timeout) > s.smsc_stall_after)
            if link.bound and now - max(link.last_rx, link.last_probe) >= s.enquire_link_interval:
                link.probe(now)


def parse_addr(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
