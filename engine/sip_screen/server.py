"""Inline SIP call screening: a stateless proxy (RFC 3261 §16.11) over UDP and TCP.

Theory of operation: every request is parsed and checked (§16.3); initial INVITEs are
judged by the same pipeline as SMS (`Call`: caller the first number of P-Asserted-Identity,
From, Remote-Party-ID's calling party, P-Preferred-Identity; callee from the Request-URI user
else To). A drop becomes a 603 Decline or 608 Rejected
(RFC 8688) with a Reason header naming the symbols and a Call-Info pointing to the remedy
page; a tag adds a header (default `X-Spam-Score: <score>; symbols=<...>`) and optionally
prefixes the display name; everything else is forwarded: Max-Forwards decremented (0 ->
483), our Via added with a branch computed from the request as §16.11 describes (so a
retransmission gets the same branch and a loop is detectable: 482, checked in one pass over
the Vias), the top Route removed when it is us. The parts live in their own modules:
fastpath.py (responses and in-dialog requests as byte edits), proxying.py (a request's checks,
Max-Forwards, branch, loop check and destination), screening.py (the verdict), bounds.py
(what one peer may cost: TCP caps, the sweeper),
forwarding.py (sending, 503 on failure; unreachable.py: an ICMP error about a forwarded
request), responses.py (relayed and our own
responses, which final answers a call), transport.py (UDP rounds), tcp.py (TCP rounds, bounds), _sippump.h
(the C pump that reads the UDP socket and relays what the fast path proves plain without
entering Python; INVITEs and the rest reach `on_datagram` below). Where a request goes (§16.6 step 6-7, RFC
3263): the top Route, else -- for an initial request only -- the configured next hop, else
the Request-URI; over the transport that URI names, UDP when it names none (TCP first for a
message over 1300 bytes, §18.1.1, falling back to UDP when refused). A request we cannot
forward (destination refused, unreachable, not permitted) is answered 503 (§16.9, RFC 3261
§21.5.4), never dropped in silence. Responses go back by the next Via, to `received`/`rport`
(§18.2.2, RFC 3581) -- over TCP on the connection the request came in on while it is open, else a new
one to `received` and the sent-by port --, through the byte-level fast path when it applies (fastpath.py),
whoever sends them; but a call is answered only by a 200 from the address its INVITE went to
(responses.py). Where each INVITE went (address, port, transport) is remembered (`invites`,
bounded): its CANCEL, the ACK of its non-2xx final and its retransmissions go there, whatever the
next hop is by then (a `ctl reload sip` that changed it, §9.1, §17.1.1.3) and over the transport it
took (TCP for one over 1300 bytes, §18.1.1). ACKs to our own rejections are absorbed (we put our tag in To). Nothing is
ever sent outside the configured networks. The verdict log is written after the verdict is taken and can never
change what happens to the call.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import OrderedDict

from ..listen import bind_error_text, host_ref, listen_args
from ..servicelog import LogThrottle
from ..smpp_proxy.concat import Reassembly
from .codec import SipParseError, make_response, parse_datagram
from .message import SipMessage
from .messaging import MESSAGE_TRANSACTIONS, Messaging
from .msgparts import MessageParts
from .fastpath import FULL_PARSE, NOT_IN_DIALOG, in_dialog, relay_response
from .forwarding import Forwarding
from .proxying import Proxying
from .overload import Overload
from .recent import Recent
from .responses import FINALS_SEEN, Responses
from .routing import Routing
from .screening import RETRANSMISSIONS, VERDICT_MEMORY, VERDICTS, Screening
from .settings import (BRANCH_PREFIX, MAGIC, TAG_PREFIX, TRANSPORTS, SipSettings, hostport,  # noqa: F401
                       load_sip_settings, parse_next_hop)
from .shares import SourceShares
from .sources import SourceFilter
from .bounds import TransportBounds
from .calllog import CallLog
from .dialogs import AnsweredCalls, Dialogs, wall_clock
from .draining import Draining
from .tcp import TcpConnection
from .tcprounds import TcpRounds
from .tcpreads import ReadBudget
from .tcpwrites import WriteBudget
from .transport import UdpEndpoint
from .unreachable import Unreachable, Watch
from .waiting import WaitingInvites

log = logging.getLogger("telfilter.sip")
INTERNAL_ERROR = "internal error"   # an INVITE's 500 (on_message): its verdict-log line's reason
ANSWERED = 200_000              # calls whose answer time is kept (for their duration at BYE)
PENDING_CALLS = 65_536          # of those places, how many calls not answered yet always keep (Recent.low_min):
                                # answered calls whose BYE never passes here (no record_route) cannot crowd out
                                # the ringing ones
DIALOG_KEY = os.urandom(16)     # the answered-call memory's digest key of a screen that restored none (one a process,
                                # as the interpreter's hash is: two screens in a process key their calls alike)
INVITES = 65_536                # forwarded INVITEs whose branch and destination their CANCEL and non-2xx ACK reuse


class SipScreen(Proxying, Forwarding, Responses, Screening, Messaging, MessageParts, WaitingInvites, Routing,
                TransportBounds, Dialogs, Overload, Unreachable, Draining, CallLog):
    def __init__(self, pipeline, settings: SipSettings, verdict_log=None, clock=None, ticks=None):
        self.pipeline, self.s = pipeline, settings
        self.vlog = verdict_log
        self.clock = clock or wall_clock
        self.ticks = ticks                                  # times a call (Dialogs.call_ticks); None: see there
        self.draining = False                               # (Draining's default, in the instance: read each INVITE)
        self.ranges = []                                    # permitted networks as integer ranges
        for n in settings.allow_networks:
            net = ipaddress.ip_network(n, strict=False)
            self.ranges.append((net.version, int(net.network_address), int(net.broadcast_address)))
        self.permit_cache: dict = {}
        self.local_hosts: dict = {}                         # URI host -> whether it is an address of ours (routing.py)
        self.udp_only: dict = {}                            # (host, port) -> until when TCP is not tried
        self.unreachable_watch = Watch()                    # "METHOD our-branch" -> a request forwarded over UDP
        self.udp = None
        self.tcp_server = None
        self.tcp_conns: dict = {}
        self.tcp_ids: dict = {}                             # TcpConnection.id -> connection, while it is open
        self.tcp_rounds = TcpRounds(self)                   # the one scheduler of TCP work (tcprounds.py)
        self.tcp_writes = WriteBudget(self)                 # what they hold for writing, in all (tcpwrites.py)
        self.tcp_reads = ReadBudget(self)                   # what they sent, not handled yet, in all (tcpreads.py)
        # (host, port) -> [(bytes, on_fail)] waiting for the one connect under way to that
        # destination: each list ends within TCP_CONNECT seconds and holds at most TCP_QUEUE
        self.tcp_connecting: dict = {}
        self.tcp_connects: set = set()                      # the connect tasks under way (stop() cancels them)
        self.tcp_per_source: dict = {}
        self.tcp_inbound = 0
        # outbound TCP (bounds.py): connects in flight and connections, in all and per destination host;
        # the connections in order of last use, in all and per host (the least recently used first)
        self.tcp_outbound = 0
        self.tcp_out_hosts: dict = {}
        self.tcp_out_lru: OrderedDict = OrderedDict()
        self.tcp_out_by_host: dict = {}
        # INVITEs sent over TCP waiting for their final: "Call-ID CSeq-number" -> ((host, port), until when), oldest
        # first; and how many per destination (its connection is in no eviction order meanwhile: bounds.py)
        self.tcp_out_invites: OrderedDict = OrderedDict()
        self.tcp_out_ringing: dict = {}
        self.tcp_out_by_tx: dict = {}             # digest of an INVITE transaction -> its destinations waiting (forks)
        self.canonical: dict = {}                           # host text -> one text per address (forwarding.py)
        # dialog_digest(Call-ID) -> (caller, answer time, dialog parties, address its INVITE was sent to, caller side,
        # the answering 200's To tag): dialogs.py; its digests keyed with dialog_key, saved with it at a clean stop and
        # while serving (dialogsave.py) and read back at the next start (dialogstore.py), so they stay the same across
        # a restart or a crash
        # calls not answered yet (INVITE forwarded, no 200, or a 3xx-6xx) are in the tier forgotten first
        # (Recent.put_low): a flood of INVITEs that never get a final pushes out only its own kind
        self.answered = AnsweredCalls(ANSWERED, low_min=PENDING_CALLS)
        self.dialog_key = DIALOG_KEY                        # recent.dialog_digest's (restore_dialogs: the last run's)
        self._answer_filter = None                         # answer_networks (responses._answers_from)
        self.trust = SourceFilter(settings.trusted_identity_networks)    # whose identity headers are read
        self.sources = SourceFilter(settings.accept_networks)   # where SIP is taken from at all (sources.py)
        # ack_key(INVITE's top branch, Call-ID) -> (our branch, (host, port, TRANSPORT it left by)[, its Decision,
        # stored at the time it was judged: judgedstore.py]) of the INVITEs we forwarded: its CANCEL (§9.1), the ACK of its non-2xx final (§17.1.1.3) and
        # its retransmissions go the same way, which they share the key with. No age limit: the key
        # holds the UAC's branch, unique per transaction, so an old entry never matches wrongly
        self.invites = Recent(INVITES)
        # digest(Call-ID, From tag, From, callee) -> (Decision, digest of its INVITE's top Via branch), or while it is
        # judged (PENDING, that digest, whether a CANCEL came)
        self.verdicts = Recent(VERDICTS, VERDICT_MEMORY)
        self.retries = Recent(VERDICTS, VERDICT_MEMORY)     # digest(Call-ID) of calls a final asked to try again
        # digest(verdict key, digest of a top Via branch) -> Decision of every INVITE transaction judged or replayed:
        # each of two INVITE transactions of one call at once keeps its answer (screening._screen_once); for Timer B:
        # later, the same branch is no retransmission but another call
        self.transactions = Recent(VERDICTS, RETRANSMISSIONS)
        # digest of a MESSAGE transaction and what it carries -> its answer (messaging.py), for its retransmissions: a
        # memory of its own, so a flood of unique MESSAGEs cannot push a call's INVITE out of `transactions` (its
        # retransmission was judged again: a second verdict line for one call)
        self.messages_tx = Recent(MESSAGE_TRANSACTIONS, RETRANSMISSIONS)
        self.message_parts = Reassembly(self._message_parts_due)    # MESSAGE parts of concatenated SMS (msgparts.py)
        self.message_parts_settling = {}    # message key -> its late parts waiting for its settled verdict
        self.message_parts_kept, self.message_parts_kept_size = OrderedDict(), 0   # (msgparts._message_kept)
        self.messages_judged_until = 0.0     # a MESSAGE judged's answer may be asked for until then (messaging.py)
        # ack_key -> (our branch, Decision, None) of the INVITEs judged and answered with a rejection (those let
        # through: their Decision in `invites`): `transactions` under keys the next process computes too, saved with
        # `answered`; `carried`: the last run's (judgedstore.py)
        self.rejected = Recent(VERDICTS, RETRANSMISSIONS)
        self.carried, self.carried_until = None, 0.0
        self.ringing: OrderedDict = OrderedDict()           # INVITE transactions without a final yet (draining.py)
        # verdict key -> {branch digest: [msg, src, then, cancelled, since]}: INVITEs on a key being judged, with
        # another branch, waiting for its verdict (waiting._wait_for_judging), at most MAX_WAITING in all
        self.waiting: dict = {}
        self.waiting_count = 0
        self.shares = SourceShares()                        # INVITEs per source address, for overload (shares.py)
        self.overloaded_until = 0.0                         # time.monotonic() until which it is (_behind)
        self.stats = {"requests": 0, "responses": 0, "screened": 0, "rejected": 0, "tagged": 0, "errors": 0,
                      "dropped": 0, "not_permitted": 0, "forward_failed": 0, "overload_dropped": 0, "icmp_errors": 0,
                      "next_hop_unreachable": 0, "keepalives": 0,
                      "tcp_refused": 0, "tcp_timed_out": 0, "log_failed": 0, "internal_errors": 0, "fast_path": 0,
                      "replayed": 0, "reinvite_unknown_dialog": 0, "final_wrong_origin": 0,
                      "tcp_write_stalled": 0, "tcp_write_dropped": 0, "loop_detected_ack": 0,
                      "tcp_out_refused": 0, "tcp_out_evicted": 0, "uncounted_unsent": 0, "tcp_write_evicted": 0,
                      "tcp_read_held": 0, "tcp_waiting_refused": 0, "tcp_source_deferred": 0,
                      "call_id_reused": 0, "cancelled_while_judged": 0, "waited_for_judging": 0,
                      "waiting_refused": 0, "overload_source_dropped": 0,
                      "identity_untrusted": 0, "source_refused": 0, "tcp_source_refused": 0,
                      "options_answered": 0, "refused_draining": 0,
                      # MESSAGE requests (messaging.py): judged, of which rejected / tagged; relayed unjudged (no
                      # text); answered unjudged (400, 503); retransmissions answered from `messages_tx`; dropped
                      # unread over their source's share while behind (also in overload_source_dropped: shares.py)
                      "messages_judged": 0, "messages_rejected": 0, "messages_tagged": 0, "messages_unjudged": 0,
                      "messages_refused": 0, "messages_replayed": 0, "messages_overload_dropped": 0,
                      "message_parts_held": 0, "message_concat_incomplete": 0, "message_parts_late": 0,   # msgparts.py
                      "message_parts_resent": 0}
        # final responses to INVITE transactions relayed or generated, by status code; each
        # transaction (Call-ID, CSeq number) counted once however often the UAS retransmits,
        # remembered for the last FINALS_SEEN transactions (bounded)
        self.final_codes: dict = {}
        self.finals_seen = Recent(FINALS_SEEN)              # digest("Call-ID CSeq-number")
        self._sweeper = None
        self.warned: dict = {}                              # kind -> LogThrottle (forwarding._warn: a kind a call site)
        self.drops_said = LogThrottle(1.0)                  # kernel drops not in the log yet (bounds.py)
        self.fast_path = True                               # False: every message takes the full parse
        self._next_hop = ("", None)                         # (settings string, parsed), see next_hop()
        self.next_hop()                                     # a bad next hop is refused at start

    def next_hop(self):
        """The configured next hop as (host, port, TRANSPORT), re-read when the setting changes."""
        if self._next_hop[0] != self.s.next_hop:
            self._next_hop = (self.s.next_hop, parse_next_hop(self.s.next_hop) if self.s.next_hop else None)
        return self._next_hop[1]

    async def start(self, serve: bool = True):
        """Bind UDP and TCP; with `serve` (else at begin()) read and accept (serve binds every port first)."""
        self._claim_fds()                                   # before listening: it may refuse the start
        loop = asyncio.get_running_loop()
        host, want = hostport(self.s.listen)
        for attempt in range(20):
            reuse = bool(getattr(self.s, "reuse_port", False))      # serve --workers N: one port, N processes
            try:
                self.udp = UdpEndpoint.bind(self, host, want, reuse_port=reuse)
            except OSError as e:
                raise OSError(e.errno, f"SIP listen {host}:{want} (UDP): {bind_error_text(e)}") from None
            port = self.udp.get_extra_info("sockname")[1]
            try:
                # `[::]` takes IPv4 peers too, as the UDP socket does (engine/listen.py)
                self.tcp_server = await loop.create_server(lambda: TcpConnection(self), **listen_args(host, port, reuse),
                                                           start_serving=False)
                break
            except OSError as e:
                self.udp.close()
                if want != 0 or attempt == 19:     # a fixed port that is taken for TCP is an error to report
                    raise OSError(e.errno, f"SIP listen {host}:{port} (TCP): {bind_error_text(e)}") from None
                # port 0: the kernel's free UDP port may be busy for TCP; take another
        self.udp_endpoint = self.udp
        adv = self.s.advertise or (("127.0.0.1" if host in ("0.0.0.0", "::", "") else host) + f":{port}")
        host_, self.port = hostport(adv, port)
        # in lower case, as via_prefixes and `me` hold it: the fast paths know our Via and our Record-Route by their
        # bytes, so they must be written as they are matched (a host's case is not significant, RFC 3261 §19.1.4)
        self.host = host_.lower()
        self.me = {(self.host, self.port)}
        if host not in ("0.0.0.0", "::", ""):
            self.me.add((host.lower(), port))
        self.via_prefixes = tuple(f"SIP/2.0/{t} {host_ref(h)}:{p};branch={BRANCH_PREFIX}".encode()
                                  for t in TRANSPORTS for h, p in self.me)
        self._where = (host, port)
        if serve:
            await self.begin()
        return self

    async def begin(self) -> None:
        """Read datagrams and accept connections on what start() bound."""
        loop = asyncio.get_running_loop()
        self.udp.start(loop)                                # the pump needs our address: after it is known
        await self.tcp_server.start_serving()
        self._sweeper = loop.create_task(self._sweep())
        if getattr(self, "dialogs_file", None) is not None:    # (start_sip's screen: serve's, worker 0's)
            from .dialogsave import DialogSaver
            self.dialog_saver = DialogSaver(self, self.dialogs_file)
            self.dialog_saver.start()                       # the answered calls saved while it serves
        logging.getLogger("telfilter.service").info("SIP screen listening on %s:%d (UDP+TCP), next hop %s",
                                                    host_ref(self._where[0]), self._where[1],
                                                    self.s.next_hop or "Request-URI")

    def _claim_fds(self, s=None):
        """The TCP caps of settings `s` (default: ours) within the process's one fd budget, shared with the
        SMPP proxy (engine/fdbudget.py FdBudget: it may lower them, with a warning, or raise FdBudgetError:
        at start the screen does not start, at a reload the caps in force stay). A reload (`s` given) takes at
        most what the SMPP proxy's running cap leaves: reloading sip.toml never shrinks SMPP's."""
        from ..fdbudget import FD_BUDGET
        reload = s is not None
        s = s or self.s
        self._fd_granted(FD_BUDGET.claim("sip", {"SIP max_tcp_connections": s.max_tcp_connections,
                                                 "SIP max_tcp_out_connections": s.max_tcp_out_connections},
                                         self._fd_granted, keep_others=reload))
        self.fd_claimed = True

    def _fd_granted(self, granted: dict):
        self.fd_cap_in = granted["SIP max_tcp_connections"]
        self.fd_cap_out = granted["SIP max_tcp_out_connections"]

    async def stop(self):
        if self._sweeper:
            self._sweeper.cancel()
        self.message_parts_judge_all()                      # every held MESSAGE answered while the sockets are open
        if self.udp:
            self.udp.close()
        self.tcp_rounds.ready.clear()                       # what waits is not handled after the stop
        for c in list(self.tcp_conns.values()):
            c.discard = True
            c.transport.close()
        connects = list(self.tcp_connects)
        for t in connects:
            t.cancel()
        await asyncio.gather(*connects, return_exceptions=True)
        if self.tcp_server:
            self.tcp_server.close()
            await self.tcp_server.wait_closed()
        if self.fd_claimed:                                 # its caps leave the fd budget (a later start gets them)
            from ..fdbudget import FD_BUDGET
            FD_BUDGET.release("sip", self._fd_granted)
            self.fd_claimed = False
        if getattr(self, "dialog_saver", None) is not None:
            await self.dialog_saver.close()                 # no periodic save under way: none replaces the stop's
        from .dialogstore import save_at_stop
        save_at_stop(self)      # the answered calls, when start_sip named a file: read back at the next start

    # ------------------------------------------------------------ input
    def on_datagram(self, data, addr):
        f = self.sources
        if not (f.every and f.networks is self.s.accept_networks) and not self.accepts(addr[0]):
            return self._source_refused(addr[0])
        if data[:1] in (b"\r", b"\n"):
            # CRLFs before the start line, which the parser ignores (RFC 3261 §7.5), gone before anything reads it:
            # an INVITE after them was never counted toward its source's share nor dropped unread while behind
            data = data.lstrip(b"\r\n")
            if not data:                # a keep-alive (a NATed phone's CRLF, RFC 5626 §3.5.1): nothing to answer
                self.stats["keepalives"] += 1
                return
        if self.fast_path:
            try:
                if data[:4] == b"SIP/":
                    r = relay_response(data, self.via_prefixes)
                    if r is not FULL_PARSE:
                        self.stats["responses"] += 1
                        self.stats["fast_path"] += 1
                        return self._relay(r, addr)
                elif data[:7] not in NOT_IN_DIALOG:             # (what in_dialog would say at once)
                    r = in_dialog(data, addr[0], addr[1], self.via_prefixes, self.next_hop())
                    # an ACK that may be for an answer of ours: the full parse recomputes our tag
                    # from Call-ID and From tag (the fast path does not read them)
                    if r is not FULL_PARSE and not (r.method == "ACK" and r.to_tag.startswith(TAG_PREFIX)) \
                            and not self._over_udp_max(r):
                        self.stats["requests"] += 1
                        self.stats["fast_path"] += 1
                        return self._in_dialog(r, data, addr)
            except Exception:                           # a bug of the fast path: the full one decides
                self.stats["internal_errors"] += 1
                log.exception("SIP fast path failed on a message from %s", addr)
        msg = None
        if data[:7] == b"INVITE ":
            if self.shares.over_share(addr[0], now := time.monotonic()) and self._behind(now):
                msg = self._reinvite(data, addr)
                if msg is None:
                    return self._source_dropped(addr)
        elif data[:8] == b"MESSAGE " and self.s.judge_messages and self.shares.over_share(
                addr[0], now := time.monotonic()) and self._behind(now):
            # judged at an INVITE's cost, in a dialog or not (messaging.py): one count, one share with its INVITEs (a
            # flood of MESSAGEs from one address left another's calls to the kernel's drops: 9 of 80 failed, 3.5 s)
            return self._message_dropped(addr)
        if msg is None:
            try:
                msg = parse_datagram(data)
            except SipParseError as e:
                self.on_parse_error(e, "UDP", addr, None)
                return
        self.on_message(msg, "UDP", addr, None)

    def on_parse_error(self, e: SipParseError, transport, src, conn):
        self.stats["errors"] += 1
        m = e.msg
        if e.status is None or m is None or not m.is_request or m.method == "ACK" or not m.get("via"):
            self._warn("unparseable", "dropped unparseable message from %s: %s", src, e.reason, level=logging.INFO)
            return
        try:
            resp = make_response(m, e.status, None, to_tag=self._tag(m))
            resp.headers.insert(len(resp.headers) - 1, ["Warning", f'399 telfilter "{e.reason[:80]}"', "warning"])
            self._refused_itself(m, e.status, src, e.reason)    # logged; its CANCEL answered here (proxying.py)
            self._reply(m, resp, transport, src, conn)
        except SipParseError:
            self._warn("malformed", "dropped malformed request from %s: %s", src, e.reason, level=logging.INFO)

    def on_message(self, msg: SipMessage, transport, src, conn):
        try:
            if msg.method is not None:                  # (msg.is_request without the property's frame)
                self.stats["requests"] += 1
                self._request(msg, transport, src, conn)
            else:
                self.stats["responses"] += 1
                self._response(msg, src)
        except SipParseError as e:
            e.msg = e.msg or msg
            self.on_parse_error(e, transport, src, conn)
        except Exception:
            # a bug of ours: the request still gets an answer (§16.9: 500), never silence
            self.stats["internal_errors"] += 1
            log.exception("internal error on SIP message from %s", src)
            if msg.is_request and msg.method != "ACK":
                try:
                    if msg.our_via:
                        msg.pop_first_value("Via")
                    self._reply(msg, make_response(msg, 500, None, self._tag(msg)), transport, src, conn)
                except Exception:
                    log.exception("could not answer 500 to %s", src)
                try:
                    # an INVITE with no verdict-log line yet: a refusal's (once a transaction: calllog.py); one
                    # judged keeps its verdict's (it may have left before the error)
                    self._refused_itself(msg, 500, src, INTERNAL_ERROR)
                except Exception:
                    log.exception("could not log the 500 to %s", src)


async def start_sip(pipeline, args, vlog, serve: bool = True):
    s = load_sip_settings(pipeline.settings.config_dir)
    if getattr(args, "sip_listen", None):
        s.listen = args.sip_listen
    if getattr(args, "sip_next_hop", None):
        s.next_hop = args.sip_next_hop
    if getattr(args, "sip_allow_networks", None):
        s.allow_networks = [n.strip() for n in args.sip_allow_networks.split(",") if n.strip()]
    s.reuse_port = bool(getattr(args, "reuse_port", False))
    screen = SipScreen(pipeline, s, vlog)
    store = getattr(pipeline, "store", None)
    if store is not None and getattr(store, "dir", None):      # the calls in progress at the last save
        from .dialogsave import remove_stale_tmp_files
        from .dialogstore import dialogs_file, restore_dialogs
        screen.dialogs_file = dialogs_file(store.dir)
        remove_stale_tmp_files(screen.dialogs_file)     # a periodic save's, killed with a serve that crashed
        restore_dialogs(screen, screen.dialogs_file)
    await screen.start(serve)
    return screen
