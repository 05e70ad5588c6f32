"""SMSC side: `SmscLink` is one bind to an SMSC with its own window; `UpstreamMixin` keeps
the links bound (reconnecting with back-off) and picks one for each request."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .codec import RemoteProtocolError, SmppConnection, Window, encode, with_sequence
from .codec import constants as C
from .codec import pdu as P
from .stream import CoalescedStream

if TYPE_CHECKING:
    from .server import SmppProxy

log = logging.getLogger("telfilter.smpp")


class SmscLink(CoalescedStream):
    """One transceiver bind to an SMSC, with its own window."""

    def __init__(self, proxy: "SmppProxy", addr, kind="transceiver"):
        self.proxy, self.addr, self.kind = proxy, addr, kind
        self.conn = SmppConnection(1 << 20)
        self.transport = None
        self.bound = False
        self.window = Window(proxy.settings.smsc_window, proxy.settings.smsc_response_timeout)
        self.bind_waiter: asyncio.Future | None = None
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.bound = False
        for seq, (_, on_resp) in list(self.window.pending.items()):
            self.window.pending.pop(seq, None)
            on_resp(None, C.ESME_RSYSERR)
        if self.bind_waiter and not self.bind_waiter.done():
            self.bind_waiter.set_exception(ConnectionError("connection lost during bind"))
        if not self.lost.done():
            self.lost.set_result(None)

    @property
    def available(self) -> bool:
        return self.bound and self.kind != "receiver" and not self.window.full and self.transport is not None \
            and not self.transport.is_closing()

    def request(self, raw_or_pdu, on_resp) -> None:
        seq = self.conn.next_sequence()
        raw = encode(P.replace(raw_or_pdu, sequence_number=seq)) if not isinstance(raw_or_pdu, (bytes, bytearray)) \
            else with_sequence(bytes(raw_or_pdu), seq)
        self.window.add(seq, time.monotonic(), on_resp)      # on_resp(resp | None, status)
        self._queue(raw)

    def malformed(self, e: RemoteProtocolError) -> None:
        log.warning("malformed PDU from SMSC %s: %s", self.addr, e)

    def pdu_received(self, ev) -> None:
        cid = ev.command_id
        if cid in (C.BIND_TRANSCEIVER_RESP, C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP) or (
                cid == C.GENERIC_NACK and self.bind_waiter and not self.bind_waiter.done()):
            if self.bind_waiter and not self.bind_waiter.done():
                self.bind_waiter.set_result(ev)
        elif P.is_response(cid) or cid == C.GENERIC_NACK:
            on_resp = self.window.complete(ev.sequence_number)
            if on_resp is not None:
                on_resp(ev, ev.command_status)
        elif cid == C.ENQUIRE_LINK:
            self.send_pdu(P.EnquireLinkResp(sequence_number=ev.sequence_number))
        elif cid == C.UNBIND:
            self.send_pdu(P.UnbindResp(sequence_number=ev.sequence_number))
            self.bound = False
            self.close()
        elif cid in (C.DELIVER_SM, C.DATA_SM):
            self.proxy.handle_smsc_deliver(self, ev)
        else:
            self.send_pdu(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))


class UpstreamMixin:
    """Mixin of `SmppProxy`: the pool of SMSC links."""

    async def wait_upstream(self, timeout=5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(l.bound for l in self.links):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _link_loop(self, addr, kind="transceiver"):
        """One SMSC connection, kept bound. An SMSC that refuses transceiver binds is used
        through a transmitter link plus a receiver link (SMPP 3.3-style)."""
        delay = self.settings.reconnect_min
        loop = asyncio.get_running_loop()
        bind_cls = {"transceiver": P.BindTransceiver, "transmitter": P.BindTransmitter, "receiver": P.BindReceiver}
        while True:
            link = SmscLink(self, addr, kind)
            try:
                await loop.create_connection(lambda: link, addr[0], addr[1])
                link.bind_waiter = loop.create_future()
                link.transport.write(encode(bind_cls[kind](
                    sequence_number=link.conn.next_sequence(), system_id=self.settings.smsc_system_id,
                    password=self.settings.smsc_password, interface_version=0x34)))
                resp = await asyncio.wait_for(link.bind_waiter, 10)
                if resp.command_status != 0:
                    if kind == "transceiver" and resp.command_status in (C.ESME_RINVCMDID, C.ESME_RINVBNDSTS,
                                                                         C.ESME_RBINDFAIL):
                        log.warning("SMSC %s:%d refuses transceiver binds (0x%02x): using transmitter + receiver",
                                    addr[0], addr[1], resp.command_status)
                        kind = "transmitter"
                        self.tasks.append(asyncio.create_task(self._link_loop(addr, "receiver")))
                        delay = 0
                    raise ConnectionError(f"bind refused with status 0x{resp.command_status:02x}")
                link.bound = True
                self.links.append(link)
                log.info("bound to SMSC %s:%d as %s", addr[0], addr[1], kind)
                delay = self.settings.reconnect_min
                await link.lost
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                log.warning("SMSC %s:%d: %s; retrying in %.1fs", addr[0], addr[1], e, delay)
            finally:
                if link in self.links:
                    self.links.remove(link)
                if link.transport:
                    link.transport.close()
            await asyncio.sleep(delay)
            delay = min(self.settings.reconnect_max, delay * 2)

    def _pick_link(self):
        n = len(self.links)
        for i in range(n):
            link = self.links[(next(self._rr)) % n]
            if link.available:
                return link
        return None
