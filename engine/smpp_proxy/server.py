"""The inline SMPP 3.4 proxy: ESMEs bind to us as if we were the SMSC; we bind upstream.

Theory of operation (after uvicorn/aiosmtpd): protocol classes only move bytes into the
codec (`SmppConnection`), events into `SmppProxy`, and answers back out. A bind has an
`EsmeSession` (per-connection state: bind state, account, its window of deliver_sm); a
submitted message has a `Pending` context that follows it upstream and back. The verdict is
turned into bytes here, at the edge:

    allow -> the original PDU bytes, only sequence_number changed, to an SMSC link
    tag   -> re-encoded with a vendor TLV and/or a text prefix
    drop  -> submit_sm_resp with the rule's command_status (default ESME_RSUBMITFAIL), or,
             for symbols configured as silent, success with a local message_id and an
             optional REJECTD delivery receipt

Nothing is acknowledged before it is safe: an ESME gets the SMSC's own submit_sm_resp
(with the SMSC's message_id); when no SMSC link is bound or its window is full the ESME gets
ESME_RTHROTTLED (retryable); an SMSC that stops answering yields ESME_RSYSERR. Receipts are
routed by message_id to a receiver/transceiver bind of the account that sent the MT and held
(in memory) until the account binds again; the SMSC's deliver_sm is acknowledged only after
the ESME acknowledged it or it was held.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import sys
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..verdict import Action, Message
from .accounts import SmppSettings, TokenBucket
from .stream import CoalescedStream
from .codec import constants as C
from .codec import (BindState, PduTooLarge, RemoteProtocolError, SmppConnection, Tlv, Window,
                    concat_info, encode, encode_text, pdu_text, split_udh, with_sequence)
from .codec import pdu as P

log = logging.getLogger("telfilter.smpp")
BIND_NAMES = {C.BIND_TRANSMITTER: "transmitter", C.BIND_RECEIVER: "receiver", C.BIND_TRANSCEIVER: "transceiver"}
_RECEIPT_ID = re.compile(rb"id:([^\s\x00]+)")


def _addr(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class VerdictLog:
    """One JSON line per verdict (stdout or a file), and optionally the same records as an
    event stream for other processes: a ZeroMQ PUB socket (topic `verdict`).

    Lines are flushed at most every FLUSH_S (and FLUSH_S after the last write), not one
    write syscall per verdict on the hot path."""

    FLUSH_S = 0.05

    def __init__(self, target="-", events: str | None = None):
        if hasattr(target, "write"):
            self.f = target
        else:
            self.f = sys.stdout if target in (None, "-") else open(target, "a", encoding="utf-8")
        self.pub = None
        self._last_flush = 0.0
        self._flush_pending = False
        if events:
            import zmq
            self.pub = zmq.Context.instance().socket(zmq.PUB)
            self.pub.setsockopt(zmq.SNDHWM, 100_000)        # a slow subscriber drops events, never blocks us
            self.pub.setsockopt(zmq.LINGER, 0)
            self.pub.bind(events)
            self._noblock, self._again = zmq.NOBLOCK, zmq.Again

    def write(self, rec: dict) -> None:
        line = json.dumps(rec, ensure_ascii=False)
        self.f.write(line + "\n")
        now = time.monotonic()
        if now - self._last_flush >= self.FLUSH_S:
            self.flush()
        elif not self._flush_pending:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
                self._flush_pending = True
            except RuntimeError:                 # no event loop here (CLI tools): flush now
                self.flush()
        if self.pub is not None:
            try:
                self.pub.send_multipart([b"verdict", line.encode()], flags=self._noblock)
            except self._again:
                pass

    def flush(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        self.f.flush()

    def close(self) -> None:
        self.flush()
        if self.pub is not None:
            self.pub.close()


# ---------------------------------------------------------------- ESME side

class EsmeSession(CoalescedStream):
    def __init__(self, proxy: "SmppProxy"):
        self.proxy = proxy
        self.conn = SmppConnection(proxy.settings.max_pdu)
        self.state = BindState()
        self.account = None
        self.transport = None
        self.peer = ("?", 0)
        self.window: dict[int, tuple] = {}          # our deliver_sm seq -> (on_resp, expiry)
        self.last_rx = time.monotonic()
        self.closed = False

    # transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("?", 0)
        self.proxy.sessions.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.proxy.session_gone(self)

    def data_received(self, data: bytes):
        self.last_rx = time.monotonic()
        super().data_received(data)

    def malformed(self, e: RemoteProtocolError) -> None:
        if isinstance(e, PduTooLarge):
            log.warning("closing bind %s from %s: %s", self.account and self.account.system_id, self.peer, e)
        else:
            log.info("malformed PDU from %s: %s (status 0x%02x)", self.peer, e, e.status)

    def pdu_received(self, ev) -> None:
        try:
            self.proxy.handle_esme_pdu(self, ev)
        except Exception:                      # a bug must not take the bind down silently
            log.exception("internal error handling %s from %s", type(ev).__name__, self.peer)
            if not P.is_response(ev.command_id):
                self.send_pdu(P.response_class(ev.command_id)(sequence_number=ev.sequence_number,
                                                             command_status=C.ESME_RSYSERR))

    def send_raw(self, raw: bytes) -> None:
        self._queue(raw)

# ---------------------------------------------------------------- SMSC side

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


# ---------------------------------------------------------------- the proxy

@dataclass
class _Concat:
    total: int
    parts: dict = field(default_factory=dict)       # seq -> (session, pdu, text)
    timer: object = None


class SmppProxy:
    def __init__(self, pipeline, settings: SmppSettings, verdict_log: VerdictLog | None = None, clock=None):
        self.pipeline = pipeline
        self.settings = settings
        self.accounts = settings.accounts
        self.vlog = verdict_log or VerdictLog("-")
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.sessions: set = set()
        self.binds: dict[str, list] = defaultdict(list)       # system_id -> [EsmeSession]
        self.buckets: dict[str, TokenBucket] = {}
        self.links: list[SmscLink] = []
        self.msgid_account: OrderedDict = OrderedDict()       # SMSC message_id -> system_id
        self.held: dict[str, deque] = defaultdict(deque)      # receipts waiting for a bind
        self.concat: dict = {}
        self._rr = itertools.count()
        self._local_ids = itertools.count(1)
        self.server = None
        self.tasks: list = []
        self.stats = defaultdict(int)

    # ------------------------------------------------------------ lifecycle
    async def start(self, listen: str | None = None):
        host, port = _addr(listen or self.settings.listen)
        self.server = await asyncio.get_running_loop().create_server(lambda: EsmeSession(self), host, port)
        for a in self.settings.smsc:
            self.tasks.append(asyncio.create_task(self._link_loop(_addr(a))))
        self.tasks.append(asyncio.create_task(self._housekeeping()))
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        for s in list(self.sessions):
            s.close()
        for l in self.links:
            if l.transport:
                l.transport.close()
        if self.server:
            self.server.close()
            await self.server.wait_closed()

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

    async def _housekeeping(self):
        """Window expiry, enquire_link to idle ESMEs and upstream, idle timeout."""
        s = self.settings
        last_probe = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for link in list(self.links):
                for seq, on_resp in link.window.expired(now):
                    log.warning("SMSC %s did not answer seq %d in time", link.addr, seq)
                    on_resp(None, C.ESME_RSYSERR)
            for sess in list(self.sessions):
                for seq, (cb, exp) in list(sess.window.items()):
                    if exp <= now:
                        del sess.window[seq]
                        cb(None)
                if now - sess.last_rx > s.idle_timeout:
                    log.info("closing idle bind %s", sess.peer)
                    sess.close()
            if now - last_probe >= s.enquire_link_interval:
                last_probe = now
                for sess in list(self.sessions):
                    if sess.state.state != "OPEN" and now - sess.last_rx >= s.enquire_link_interval:
                        self._send_to_esme(sess, P.EnquireLink(), lambda r: None)
                for link in self.links:
                    if link.available:
                        link.request(P.EnquireLink(), lambda r, st: None)

    def session_gone(self, sess: EsmeSession):
        self.sessions.discard(sess)
        if sess.account is not None:
            lst = self.binds.get(sess.account.system_id, [])
            if sess in lst:
                lst.remove(sess)
        for seq, (cb, _) in list(sess.window.items()):
            cb(None)
        sess.window.clear()

    # ------------------------------------------------------------ from ESMEs
    def handle_esme_pdu(self, sess: EsmeSession, pdu):
        cid = pdu.command_id
        if not sess.state.allowed_from_esme(cid):
            if P.is_response(cid):
                return
            status = C.ESME_RALYBND if cid in BIND_NAMES else C.ESME_RINVBNDSTS
            sess.send_pdu(P.response_class(cid)(sequence_number=pdu.sequence_number, command_status=status))
            return
        if cid in BIND_NAMES:
            return self._bind(sess, pdu)
        if cid == C.ENQUIRE_LINK:
            return sess.send_pdu(P.EnquireLinkResp(sequence_number=pdu.sequence_number))
        if cid == C.UNBIND:
            sess.send_pdu(P.UnbindResp(sequence_number=pdu.sequence_number))
            sess.state.state = "UNBOUND"
            asyncio.get_running_loop().call_later(0.05, sess.close)
            return
        if cid in (C.DELIVER_SM_RESP, C.DATA_SM_RESP, C.ENQUIRE_LINK_RESP, C.UNBIND_RESP, C.GENERIC_NACK):
            ent = sess.window.pop(pdu.sequence_number, None)
            if ent:
                ent[0](pdu)
            return
        if cid in (C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI):
            acct = sess.account.system_id
            b = self.buckets.get(acct)
            if b is None:
                b = self.buckets[acct] = TokenBucket(sess.account.throughput)
            if not b.take():
                self.stats["throttled"] += 1
                return sess.send_pdu(P.response_class(cid)(sequence_number=pdu.sequence_number,
                                                          command_status=C.ESME_RTHROTTLED))
            return self._submit(sess, pdu)
        if cid == C.REPLACE_SM:
            text = pdu_text(pdu)
            if text is not None:
                v = self._judge(sess, pdu.source_addr, "", text, "replace_sm")
                if v.action is Action.DROP:
                    return sess.send_pdu(P.ReplaceSmResp(sequence_number=pdu.sequence_number,
                                                         command_status=v.smpp_status))
            return self._relay(sess, pdu)
        if cid in (C.QUERY_SM, C.CANCEL_SM):
            return self._relay(sess, pdu)
        sess.send_pdu(P.GenericNack(sequence_number=pdu.sequence_number, command_status=C.ESME_RINVCMDID))

    def _bind(self, sess: EsmeSession, pdu):
        resp_cls = P.response_class(pdu.command_id)
        kind = BIND_NAMES[pdu.command_id]
        acct = self.accounts.get(pdu.system_id)
        status = C.ESME_ROK
        if acct is None:
            status = C.ESME_RINVSYSID
        elif not acct.check_password(pdu.password):
            status = C.ESME_RINVPASWD
        elif kind not in acct.bind_types or not acct.network_allowed(sess.peer[0]):
            status = C.ESME_RBINDFAIL
        elif len(self.binds[acct.system_id]) >= acct.max_binds:
            status = C.ESME_RBINDFAIL
        if status:
            log.info("bind %s as %r from %s refused: 0x%02x", kind, pdu.system_id, sess.peer[0], status)
            sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, command_status=status))
            return
        sess.account = acct
        sess.state.bound(pdu.command_id)
        self.binds[acct.system_id].append(sess)
        sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, system_id="telfilter",
                               tlvs=(Tlv(C.TAG_SC_INTERFACE_VERSION, b"\x34"),)))
        log.info("ESME %s bound as %s from %s", acct.system_id, kind, sess.peer[0])
        if sess.state.can_receive:
            self._flush_held(acct.system_id)

    # ------------------------------------------------------------ submit path
    def _submit(self, sess: EsmeSession, pdu):
        cid = pdu.command_id
        text = pdu_text(pdu)
        ci = concat_info(getattr(pdu, "esm_class", 0), getattr(pdu, "short_message", b""), pdu.tlvs) \
            if cid == C.SUBMIT_SM else None
        if ci is not None and ci[1] > 1 and 1 <= ci[2] <= ci[1]:
            key = (sess.account.system_id, pdu.source_addr, pdu.destination_addr, ci[0], ci[1])
            c = self.concat.get(key)
            if c is None:
                c = self.concat[key] = _Concat(ci[1])
                c.timer = asyncio.get_running_loop().call_later(self.settings.concat_timeout, self._concat_due, key)
            c.parts[ci[2]] = (sess, pdu, text)
            if len(c.parts) == c.total:
                c.timer.cancel()
                self._concat_due(key)
            return
        dests = [pdu.destination_addr] if cid != C.SUBMIT_MULTI else [d[3] for d in pdu.dest_addresses if d[0] == 1]
        verdicts = [self._judge(sess, pdu.source_addr, d, text, type(pdu).__name__) for d in dests] if text is not None \
            else [None]
        drops = [v for v in verdicts if v is not None and v.action is Action.DROP]
        if drops:
            return self._drop(sess, [pdu], drops[0])
        tagged = next((v for v in verdicts if v is not None and v.action is Action.TAG), None)
        self._forward(sess, pdu, tagged)

    def _concat_due(self, key):
        c = self.concat.pop(key, None)
        if c is None:
            return
        parts = [c.parts[i] for i in sorted(c.parts)]
        live = [(s, p) for s, p, _ in parts if not s.closed]
        if not live:
            return
        texts = [t for _, _, t in parts]
        text = None if any(t is None for t in texts) else "".join(texts)
        if len(parts) < c.total:
            log.info("concatenated message %s: %d of %d parts after %.0fs; judging what arrived",
                     key[3], len(parts), c.total, self.settings.concat_timeout)
        sess0, pdu0 = live[0]
        v = self._judge(sess0, pdu0.source_addr, pdu0.destination_addr, text, f"SubmitSm x{len(parts)}/{c.total}") \
            if text is not None else None
        if v is not None and v.action is Action.DROP:
            for s, p in live:
                self._drop(s, [p], v)
            return
        for i, (s, p) in enumerate(live):
            # one verdict covers all parts; a tag goes on every part (TLV), the prefix on the first only
            self._forward(s, p, v if v is not None and v.action is Action.TAG else None, prefix=(i == 0))

    def _judge(self, sess, sender, recipient, text, what):
        t0 = time.perf_counter()
        msg = Message(sender=sender, recipient=recipient, text=text, time=self.clock(),
                      account=sess.account.system_id if sess.account else "", direction="mt")
        v = self.pipeline.judge(msg)
        us = (time.perf_counter() - t0) * 1e6
        self.stats[f"verdict_{v.action}"] += 1
        self.vlog.write({"ts": msg.time.isoformat(), "kind": "sms", "pdu": what, "account": msg.account,
                         "sender": sender, "recipient": recipient, "action": str(v.action),
                         "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits], "judge_us": round(us, 1)})
        return v

    def _drop(self, sess, pdus, v):
        silent = any(h.symbol in self.settings.silent_symbols for h in v.hits if h.action is Action.DROP)
        for pdu in pdus:
            resp = P.response_class(pdu.command_id)
            if not silent:
                sess.send_pdu(resp(sequence_number=pdu.sequence_number, command_status=v.smpp_status))
                continue
            mid = f"L{next(self._local_ids):09d}"
            sess.send_pdu(resp(sequence_number=pdu.sequence_number, message_id=mid))
            if self.settings.rejected_receipt and getattr(pdu, "registered_delivery", 0) & 0x03:
                self._rejected_receipt(sess, pdu, mid)

    def _rejected_receipt(self, sess, pdu, mid):
        now = self.clock().strftime("%y%m%d%H%M")
        body = f"id:{mid} sub:001 dlvrd:000 submit date:{now} done date:{now} stat:REJECTD err:000 text:".encode()
        dr = P.DeliverSm(source_addr_ton=pdu.dest_addr_ton, source_addr_npi=pdu.dest_addr_npi,
                         source_addr=pdu.destination_addr, dest_addr_ton=pdu.source_addr_ton,
                         dest_addr_npi=pdu.source_addr_npi, destination_addr=pdu.source_addr,
                         esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=body,
                         tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"), Tlv(C.TAG_MESSAGE_STATE, b"\x08")))
        target = sess if sess.state.can_receive and not sess.closed else None
        self._deliver_receipt(sess.account.system_id, dr, target=target, on_done=lambda ok: None)

    def _tagged(self, pdu, v, prefix=True):
        tl = list(pdu.tlvs)
        if self.settings.tag_tlv is not None:
            tl.append(Tlv(self.settings.tag_tlv, f"{v.score:g};{','.join(v.symbols)}".encode()))
        p = pdu
        if prefix and self.settings.tag_prefix and pdu.command_id == C.SUBMIT_SM and pdu.short_message:
            udh, body = split_udh(pdu.esm_class, pdu.short_message)
            dc = pdu.data_coding
            try:
                if dc == 0x08:
                    new = self.settings.tag_prefix.encode("utf-16-be") + body
                elif dc in (0x00, 0x01, 0x03):
                    new = encode_text(self.settings.tag_prefix)[1] if dc == 0 else self.settings.tag_prefix.encode("latin-1")
                    new += body
                else:
                    new = None
            except (ValueError, UnicodeEncodeError):
                new = None
            if new is not None and len(udh) + len(new) <= 254:
                p = P.replace(p, short_message=udh + new)
        return P.replace(p, tlvs=tuple(tl))

    def _forward(self, sess, pdu, tag_verdict, prefix=True):
        link = self._pick_link()
        if link is None:
            self.stats["upstream_unavailable"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        out = self._tagged(pdu, tag_verdict, prefix) if tag_verdict is not None else pdu.raw
        esme_seq = pdu.sequence_number
        acct = sess.account.system_id
        t0 = time.perf_counter()

        def on_resp(resp, status):
            if resp is None or resp.command_id == C.GENERIC_NACK:
                sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq,
                                                              command_status=status or C.ESME_RSYSERR))
                return
            if resp.command_status == 0 and getattr(resp, "message_id", ""):
                self.msgid_account[resp.message_id] = acct
                if len(self.msgid_account) > 2_000_000:
                    self.msgid_account.popitem(last=False)
            sess.send_raw(with_sequence(resp.raw, esme_seq) if resp.raw else encode(P.replace(resp, sequence_number=esme_seq)))
            self.stats["forwarded"] += 1
            self.stats["added_us_total"] += int((time.perf_counter() - t0) * 1e6)
        link.request(out, on_resp)

    def _relay(self, sess, pdu):
        link = self._pick_link()
        if link is None:
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        esme_seq = pdu.sequence_number

        def on_resp(resp, status):
            if resp is None or resp.command_id == C.GENERIC_NACK:
                return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=esme_seq,
                                                                     command_status=status or C.ESME_RSYSERR))
            sess.send_raw(with_sequence(resp.raw, esme_seq))
        link.request(pdu.raw, on_resp)

    def _pick_link(self):
        n = len(self.links)
        for i in range(n):
            link = self.links[(next(self._rr)) % n]
            if link.available:
                return link
        return None

    # ------------------------------------------------------------ from the SMSC
    def handle_smsc_deliver(self, link: SmscLink, pdu):
        resp_cls = P.response_class(pdu.command_id)
        seq = pdu.sequence_number
        ack = lambda status=0: link.send_pdu(resp_cls(sequence_number=seq, command_status=status))
        is_receipt = pdu.esm_class & C.ESM_TYPE_MASK in (0x04, 0x08, 0x10, 0x20)
        if is_receipt:
            mid = P.tlv(pdu, C.TAG_RECEIPTED_MESSAGE_ID)
            if mid is not None:
                mid = mid.rstrip(b"\x00").decode("latin-1")
            else:
                body = P.tlv(pdu, C.TAG_MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"")
                m = _RECEIPT_ID.search(body)
                mid = m.group(1).decode("latin-1") if m else None
            acct = self.msgid_account.get(mid) if mid else None
            if acct is None:
                log.info("receipt for unknown message_id %r: acknowledged and dropped", mid)
                self.stats["receipts_unknown"] += 1
                return ack()
            self._deliver_receipt(acct, pdu, on_done=lambda ok: ack(0 if ok else C.ESME_RX_T_APPN))
            return
        # mobile-originated
        text = pdu_text(pdu)
        shortcode = self.pipeline.settings.shortcode
        dest = getattr(pdu, "destination_addr", "")
        if text is not None:
            msg = Message(sender=pdu.source_addr, recipient=dest, text=text, time=self.clock(), account="", direction="mo")
            t0 = time.perf_counter()
            v = self.pipeline.judge(msg)
            self.vlog.write({"ts": msg.time.isoformat(), "kind": "sms", "pdu": type(pdu).__name__ + " MO",
                             "account": "", "sender": msg.sender, "recipient": dest, "action": str(v.action),
                             "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits],
                             "judge_us": round((time.perf_counter() - t0) * 1e6, 1)})
            if dest.lstrip("+") == shortcode:
                ack()
                self._confirm_shortcode(link, pdu, v)
                return
            if v.action is Action.DROP:
                return ack(v.smpp_status)
        target = self._mo_target(dest)
        if target is None:
            return ack(C.ESME_RX_T_APPN)        # no ESME bound for it: the SMSC retries later
        self._send_to_esme(target, pdu, lambda r: ack(r.command_status if r is not None else C.ESME_RX_T_APPN))

    def _confirm_shortcode(self, link, mo, v):
        if not self.settings.confirm_shortcode or not v.hits:
            return
        reply = self.settings.shortcode_replies.get(v.hits[0].symbol)
        if not reply:
            return
        dc, body = encode_text(reply)
        mt = P.SubmitSm(source_addr_ton=0, source_addr_npi=0, source_addr=self.pipeline.settings.shortcode,
                        dest_addr_ton=mo.source_addr_ton, dest_addr_npi=mo.source_addr_npi,
                        destination_addr=mo.source_addr, data_coding=dc, short_message=body[:254])
        if link.available:
            link.request(mt, lambda r, st: None)

    def _mo_target(self, dest: str):
        best = None
        for sid, sessions in self.binds.items():
            acct = self.accounts.get(sid)
            if acct is None:
                continue
            for pfx in acct.mo_prefixes:
                if dest.startswith(pfx) and (best is None or len(pfx) > best[0]):
                    rx = [s for s in sessions if s.state.can_receive and not s.closed]
                    if rx:
                        best = (len(pfx), rx)
        if best is None:
            return None
        return best[1][next(self._rr) % len(best[1])]

    def _receivers(self, acct):
        return [s for s in self.binds.get(acct, []) if s.state.can_receive and not s.closed
                and len(s.window) < s.account.window]

    def _deliver_receipt(self, acct, pdu, on_done, target=None):
        rx = [target] if target is not None else self._receivers(acct)
        if not rx:
            self.held[acct].append(pdu)
            self.stats["receipts_held"] += 1
            return on_done(True)              # held: we answer for it now
        sess = rx[next(self._rr) % len(rx)]

        def done(r):
            if r is None or r.command_status != 0:
                self.held[acct].append(pdu)       # ESME went away or refused: hold for its next bind
            on_done(True)
        self._send_to_esme(sess, pdu, done)

    def _flush_held(self, acct):
        q = self.held.get(acct)
        while q:
            rx = self._receivers(acct)
            if not rx:
                return
            pdu = q.popleft()
            self._deliver_receipt(acct, pdu, on_done=lambda ok: None)

    def _send_to_esme(self, sess, pdu, on_resp):
        seq = sess.conn.next_sequence()
        sess.window[seq] = (on_resp, time.monotonic() + self.settings.smsc_response_timeout)
        sess.send_raw(with_sequence(pdu.raw, seq) if getattr(pdu, "raw", b"") else encode(P.replace(pdu, sequence_number=seq)))
